from django.urls import path

from metrics import api

urlpatterns = [
    path("api/v1/events", api.post_events, name="api-events"),
]
