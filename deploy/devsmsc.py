"""The development SMSC inside the compose network (dev profile only): the same server as
`python -m qz_outbound.dev.smsc serve`, bound to the container's interface so the workers and
the receiver reach it as `devsmsc:2775`. Never in production: it accepts any password."""

import signal
import time

from qz_outbound.dev.smsc import Behaviour, DevSmsc

smsc = DevSmsc(port=2775, http_port=8775, system_id="QZDEV", behaviour=Behaviour(), host="0.0.0.0").start()
signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
print(f"development SMSC on :{smsc.port} (control :{smsc.http_port})", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    smsc.stop()
