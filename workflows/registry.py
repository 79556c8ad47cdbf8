"""Every workflow a worker runs."""

from workflows.person_left import PersonLeftWorkflow
from workflows.ticket import TicketWorkflow

WORKFLOWS = [TicketWorkflow, PersonLeftWorkflow]
