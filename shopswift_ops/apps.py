from django.apps import AppConfig


class ShopswiftOpsConfig(AppConfig):
    name = "shopswift_ops"
    label = "shopswift_ops"
    verbose_name = "ShopSwift Ops (shared)"
