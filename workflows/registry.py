"""Every workflow a worker runs, and what templates may call: the activity catalog's signatures."""

from activities.catalog import catalog
from domain.template_validation import ActivitySignature
from workflows.maintenance import MaintenanceWorkflow
from workflows.person_left import PersonLeftWorkflow
from workflows.survey import SurveyWorkflow
from workflows.ticket import TicketWorkflow

WORKFLOWS = [TicketWorkflow, PersonLeftWorkflow, MaintenanceWorkflow, SurveyWorkflow]


def activity_signatures() -> dict[str, ActivitySignature]:
    """Each catalog activity's inputs and outputs, as template validation checks an ``action`` node."""
    out = {}
    for name, entry in catalog().items():
        fields = entry.input_model.model_fields
        out[name] = ActivitySignature(
            inputs=frozenset(fields),
            required_inputs=frozenset(n for n, f in fields.items() if f.is_required()),
            outputs=frozenset(entry.output_model.model_fields) if entry.output_model else None,
        )
    return out
