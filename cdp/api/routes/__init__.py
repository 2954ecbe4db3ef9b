"""The API's routers: profiles, stages, changes, health and the dashboard."""
