"""The simulated buyers and sellers of ShopSwift: stable ids, drawn once per seed.

Buyers carry their *true* attributes (account age, sign-up method, history); what the feature
store serves to the model is derived from them in `engine` (where failures can corrupt it).
"""
from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass

FIRST_NAMES = ("anna", "ben", "carla", "dario", "elif", "farid", "greta", "hugo", "ines", "jonas", "kira",
               "luca", "mara", "nils", "olga", "paul", "rosa", "sami", "tara", "umut", "vera", "wim", "yara", "zoe")
LAST_NAMES = ("alves", "berger", "costa", "dimitrov", "eriksen", "fischer", "garcia", "hansen", "ivanova",
              "jansen", "kowalski", "lopez", "moreau", "novak", "olsen", "petrov", "quinn", "rossi", "schmidt",
              "tanaka", "urban", "vogel", "weber", "yilmaz", "zimmer")
SOCIAL = ("social_google", "social_apple")


@dataclass(slots=True)
class Buyer:
    buyer_id: str
    signup_method: str
    account_age_days: int
    prior_good_orders: int
    device_risk: float  # the reputation of the buyer's usual device
    home_country_match: float  # probability the card's BIN country equals the shipping country
    email: str | None
    fraudster: bool = False


@dataclass(slots=True)
class Seller:
    seller_id: str
    top: bool
    amount_median_minor: int


class Population:
    """`params` is the scenario's `world` block (see scenario.DEFAULT_WORLD)."""

    def __init__(self, params: dict, seed: int):
        rng = random.Random(f"population:{seed}")
        self.buyers: list[Buyer] = []
        weights: list[float] = []
        social_share = params["social_share"]
        new_share = params["new_account_share"]
        guest_share = params["guest_share"]
        for index in range(params["buyers"]):
            roll = rng.random()
            if roll < guest_share:
                kind = "guest"
            elif roll < guest_share + new_share:
                kind = "new"
            else:
                kind = "repeat"
            buyer = _draw_buyer(rng, index, kind, social_share)
            self.buyers.append(buyer)
            # Repeat buyers order far more often: most traffic comes from them.
            weights.append({"repeat": 1.0 + min(buyer.prior_good_orders, 60) / 12, "new": 0.6, "guest": 0.5}[kind])
        self.buyer_cum = list(itertools.accumulate(weights))
        self.fraudsters = [_draw_fraudster(rng, index) for index in range(params["fraudsters"])]
        self.sellers: list[Seller] = []
        seller_weights: list[float] = []
        for index in range(params["sellers"]):
            top = index < params["top_sellers"]
            median = rng.choice((45_000, 80_000, 120_000)) if top else int(rng.lognormvariate(math.log(3500), 0.5))
            self.sellers.append(Seller(f"s-{index:05d}", top, median))
            seller_weights.append(params["top_seller_weight"] if top else 1.0)
        self.seller_cum = list(itertools.accumulate(seller_weights))

    def pick_buyer(self, rng: random.Random) -> Buyer:
        return self.buyers[bisect.bisect(self.buyer_cum, rng.random() * self.buyer_cum[-1])]

    def pick_fraudster(self, rng: random.Random) -> Buyer:
        return self.fraudsters[int(rng.random() * len(self.fraudsters))]

    def pick_seller(self, rng: random.Random) -> Seller:
        return self.sellers[bisect.bisect(self.seller_cum, rng.random() * self.seller_cum[-1])]


def _email(rng: random.Random, index: int) -> str:
    # Fake and stable per buyer: derived from the index alone.
    return f"{FIRST_NAMES[index * 7 % len(FIRST_NAMES)]}.{LAST_NAMES[index * 11 % len(LAST_NAMES)]}{index}@example.com"


def _draw_buyer(rng: random.Random, index: int, kind: str, social_share: float) -> Buyer:
    if kind == "guest":
        return Buyer(f"b-{index:07d}", "guest", 0, 0, _device_risk(rng, 0.10), 0.95, None)
    if kind == "new":
        # New sign-ups of the last month; the social-login flow brought a good part of them.
        method = SOCIAL[index & 1] if rng.random() < social_share * 1.6 else ("email", "email", "phone")[index % 3]
        return Buyer(f"b-{index:07d}", method, int(rng.random() * 31), int(rng.random() * 3), _device_risk(rng, 0.12),
                     0.95, _email(rng, index))
    # Long-standing buyers; some of them linked Google or Apple sign-in when the flow launched.
    method = SOCIAL[index & 1] if rng.random() < social_share * 0.9 else ("email", "email", "email", "phone")[index % 4]
    age = int(min(6000, 60 + rng.expovariate(1 / 700)))
    prior = max(1, int(rng.expovariate(1 / 14)))
    return Buyer(f"b-{index:07d}", method, age, prior, _device_risk(rng, 0.06), 0.97, _email(rng, index))


def _draw_fraudster(rng: random.Random, index: int) -> Buyer:
    method = rng.choice(("email", "email", "guest", "social_google", "phone"))
    return Buyer(f"b-f{index:06d}", method, rng.randint(0, 12), 0, _device_risk(rng, 0.55), 0.45,
                 None if method == "guest" else _email(rng, 900_000 + index), fraudster=True)


def _device_risk(rng: random.Random, mean: float) -> float:
    # u ** k has mean 1 / (k + 1): most devices clean, a long tail of bad ones.
    return round(rng.random() ** (1 / mean - 1), 3)
