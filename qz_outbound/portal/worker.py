"""The start of an upload worker process: lower its priority before it imports anything heavy.

Kept apart from :mod:`qz_outbound.portal.uploads` (and importing only ``os``) because a worker
imports the module of its initializer before it can run it."""

import os


def lower_priority() -> None:
    os.nice(10)   # the API server's own process comes first when the cores are busy
