from django.urls import path

from incidents import api as incidents_api
from incidents.views import exec as exec_views
from incidents.views import incidents as incident_views
from incidents.views import war_room

urlpatterns = [
    path("war-room/", war_room.war_room, name="war-room"),
    path("war-room/panels/", war_room.war_room_panels, name="war-room-panels"),
    path("war-room/series/", war_room.war_room_series, name="war-room-series"),
    path("war-room/actions/confirm/", war_room.war_room_confirm, name="war-room-confirm"),
    path("war-room/actions/", war_room.war_room_action, name="war-room-action"),
    path("incidents/<int:incident_id>/war-room/", war_room.war_room, name="incident-war-room"),
    path("incidents/", incident_views.incident_list, name="incident-list"),
    path("incidents/new/", incident_views.incident_open, name="incident-open"),
    path("incidents/<int:incident_id>/", incident_views.incident_detail, name="incident-detail"),
    path("incidents/<int:incident_id>/postmortem/", incident_views.postmortem_page, name="incident-postmortem"),
    path("incidents/<int:incident_id>/postmortem.md", incident_views.postmortem_markdown, name="incident-postmortem-md"),
    path("incidents/<int:incident_id>/do/<slug:action>/", incident_views.incident_action, name="incident-action"),
    path("exec/", exec_views.exec_page, name="exec"),
    path("api/v1/incidents", incidents_api.incidents_list, name="api-incidents"),
    path("api/v1/incidents/<int:incident_id>", incidents_api.incident_detail, name="api-incident"),
]
