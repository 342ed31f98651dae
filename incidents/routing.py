"""Websocket routes of the incidents app (collected by shopswift_ops/routing.py)."""
from django.urls import path

from incidents.consumers import WarRoomConsumer

websocket_urlpatterns = [
    path("ws/war-room/", WarRoomConsumer.as_asgi()),
]
