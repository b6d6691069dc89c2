"""The one compiled part: the sidecar's HTTP/1.1 head scanner (everything else is in pyproject)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("sidecar._http1scan", ["sidecar/_http1scan.c"], extra_compile_args=["-O2"])
    ]
)
