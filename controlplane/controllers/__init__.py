"""Controllers: one per module, each shaped enqueue → process_next → reconcile(key) (base.py)."""
