from django.urls import path

from incidents.support import api, views

app_name = "support"

urlpatterns = [
    path("support/", views.search, name="search"),
    path("support/orders/<str:order_id>/", views.order, name="order"),
    path("support/orders/<str:order_id>/notes", views.add_note, name="add-note"),
    path("support/orders/<str:order_id>/label", views.label, name="label"),
    path("support/orders/<str:order_id>/escalate", views.escalate, name="escalate"),
    path("support/buyers/<str:buyer_id>/", views.buyer, name="buyer"),
    path("support/sellers/<str:seller_id>/", views.seller, name="seller"),
    path("support/sellers/<str:seller_id>/failed-orders.csv", views.seller_export, name="seller-export"),
    path("support/incidents/<str:incident_id>/affected/", views.affected, name="affected"),
    path("support/incidents/<str:incident_id>/affected.csv", views.affected_export, name="affected-export"),
    path("compliance/", views.compliance, name="compliance"),
    path("api/v1/orders/<str:order_id>", api.order, name="api-order"),
]
