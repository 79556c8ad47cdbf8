"""Every activity a worker registers."""

from activities import projection

ACTIVITIES = [*projection.ACTIVITIES]
