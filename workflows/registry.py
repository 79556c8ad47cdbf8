"""Every workflow a worker runs."""

from workflows.ticket import TicketWorkflow

WORKFLOWS = [TicketWorkflow]
