"""Regional data isolation: which regions an actor may see and act in."""

from models.ticket import ActorRef

ALL_REGIONS = "*"


def can_access_region(actor: ActorRef, region: str) -> bool:
    return ALL_REGIONS in actor.regions or region in actor.regions


def visible_regions(actor: ActorRef) -> list[str] | None:
    """The regions an actor sees, or None for every region."""
    return None if ALL_REGIONS in actor.regions else list(actor.regions)
