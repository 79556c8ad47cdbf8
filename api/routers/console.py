"""/console: the agents', engineers', approvers' and finance's pages (plain HTML, CSS and JS
over the JSON API, no build step; signed in with an API key like /dashboard)."""

from fastapi import APIRouter

router = APIRouter(tags=["console"])
