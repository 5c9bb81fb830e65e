"""SMS delivery over SMPP: outbox, windowed sender, receiver (the development SMSC is in ``qz_outbound.dev``).

What the DAG calls (signatures in docs/sms-delivery.md):

* :func:`queue_messages` — render and record the SMS of given contacts;
* :func:`send_batch` — send one county's queued SMS (this cycle and leftovers);
* :func:`run_receiver` — the long-running receipts/replies service;
* :func:`settings_from_connection` / :class:`SmscSettings` — the SMSC account.

Nothing here imports Airflow; ``plugins/smpp_hook.py`` adapts the ``smsc``
connection.
"""

from qz_outbound.sms import schema  # noqa: F401  (tables on the project metadata)
from qz_outbound.sms.outbox import QueueResult, SmsToQueue, outbox_counts, queue_messages
from qz_outbound.sms.receiver import run_receiver
from qz_outbound.sms.runs import SenderBusy
from qz_outbound.sms.sender import SendResult, send_batch
from qz_outbound.sms.settings import SmsConfig, SmscSettings, load_sms_config, settings_from_connection

__all__ = [
    "queue_messages", "SmsToQueue", "QueueResult", "outbox_counts",
    "send_batch", "SendResult", "SenderBusy",
    "run_receiver",
    "SmscSettings", "SmsConfig", "load_sms_config", "settings_from_connection",
]
