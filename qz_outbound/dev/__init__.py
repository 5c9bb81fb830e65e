"""Development tools, never used by the product's code paths.

* :mod:`qz_outbound.dev.smsc` — the development SMSC (an SMPP server with a control API), the
  stand-in SMSC of ``bin/demo``, the tests, ``scripts/topology.sh`` and the compose ``dev`` profile;
* :mod:`qz_outbound.dev.jasmin` — provisions a local Jasmin gateway for the interoperability test;
* :mod:`qz_outbound.dev.demo_datamart` — the demo data-mart generator (``qz-outbound generate-datamart``).

Nothing under ``qz_outbound`` outside this package imports it, except the CLI's
``generate-datamart`` command (lazily). The project image keeps the SMSC and the generator because
the compose ``dev`` profile runs both from it (``docker-compose.yml``: ``devsmsc``, ``demo-datamart``).
"""
