"""Alert delivery: the episodes of ``alert_episodes`` sent to webhooks and e-mail, each event
once (``deliver.py``; channels ``channels.py``, formats ``messages.py``, sending ``send.py``,
what was sent ``ledger.py``)."""
