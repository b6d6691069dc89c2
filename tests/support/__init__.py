"""What the tests share: polling, servers on threads, the processes they start, traffic builders.

Imported under one name only, ``tests.support.<module>``; test modules never import
each other.
"""
