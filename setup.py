"""The compiled parts: the sidecar's hot path and the span decoder (the rest: pyproject)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sidecar._http1scan",
            ["sidecar/_http1scan.c"],
            depends=["sidecar/lane_record.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "sidecar._otlpspan",
            ["sidecar/_otlpspan.c"],
            depends=["sidecar/lane_record.h"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "tracestore._otlpdecode", ["tracestore/_otlpdecode.c"], extra_compile_args=["-O2"]
        ),
    ]
)
