"""Service functions per resource: business rules of the gateway, raising domain errors."""
