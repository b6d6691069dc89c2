"""The demo: a small microservice system, each service behind its own sidecar, under load.

``sidetrace demo`` runs it beside an embedded store, collector and dashboard
(see ``sidetrace.all_in_one``) so a newcomer browses real traces within a minute.
"""
