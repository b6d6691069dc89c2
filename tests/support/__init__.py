"""What the tests share: polling, servers on threads, the processes they start, traffic builders.

Imported under one name only, ``tests.support.<module>``; test modules never import
each other.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout: deploy/, tests/fuzz/, ...
