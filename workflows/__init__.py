"""Deterministic orchestration only: TicketWorkflow (ticket.py) over its engine (run.py, actions.py,
nodes/, sla.py, assignment.py) and PersonLeftWorkflow. ``registry.WORKFLOWS`` lists what a worker registers."""
