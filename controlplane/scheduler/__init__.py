"""The scheduler: filter and score plugins (framework.py, plugins/) and the
loop that binds pending pods (scheduler.py)."""
