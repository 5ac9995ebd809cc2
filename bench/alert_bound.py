#!/usr/bin/env python3
"""The best any detector could do on `vigil produce`'s amount spikes (docs/alert-quality.md).

An oracle that knows everything the generator drew for each user (typical spend, categories,
devices, home IP, trips and new devices) and flags events by likelihood ratio is the best
detector there is for a one-event episode; no model that sees only the events can beat it. It
tells apart every spike that comes from a new device, from abroad or on mobile (a legitimate
mobile purchase goes through the carrier's IP, never the home one). The others (at home, from
one of the user's own devices, with the home IP, at a point of sale or on the web) look like a
legitimate purchase in everything but the amount and the category, and there it flags the cells
(user, channel, category, amount as a multiple of the user's typical spend) in order of
likelihood ratio, paying with the legitimate purchases in each. The figures: spike recall and
episode recall against false alerts per 10,000 legitimate events (each flagged legitimate event
counted as one alert), with card testing and takeovers caught in full at no cost, so the bound
is generous.

The constants mirror daemon/data/produce_events.c, produce_fraud.c and produce_world.c and must
change with them. Usage: alert_bound.py [--users N] (numpy).
"""
import argparse

import numpy as np

NCAT = 12
SPEND_FACTOR = np.array([1.0, 3.0, 4.0, 1.2, 0.8, 0.5, 1.5, 0.6, 0.6, 2.0, 0.3, 1.0])
GROCERY, ELECTRONICS, TRAVEL, GAMING, APPAREL, GIFT_CARDS = 0, 1, 2, 5, 6, 11
SPIKE_CATS = [ELECTRONICS, TRAVEL, GIFT_CARDS, APPAREL, GAMING]  # produce_cats_spike
BIG_CATS = [ELECTRONICS, TRAVEL, APPAREL]  # produce_cats_big
BIG_PER_TXN = 50 / 10000  # PRODUCE_BIG_PURCHASE_PER_10K
TXN = 0.6  # of legitimate events (produce_pick_type)
NOT_TRIP, OWN_DEVICE = 1 - 0.030, 1 - 0.020 * 0.5  # per block; a new device for half the events
SPIKE_HOME_OWN = 0.7 * 0.7  # not abroad, one of the user's devices
# channel: (spike's share, a legitimate purchase's share); mobile and atm are not in the hard set
CHANNELS = {"web": (0.5, 0.2), "pos": (0.3, 0.4)}
SIGMA = 0.7  # log-normal spread of everyday purchases
EPISODES = {"card_testing": 40, "account_takeover": 40, "amount_spike": 250}  # per window


def category_probs(cats, draws):
    """P(category) of produce_user_category(u, k) for k uniform in 0..draws-1."""
    p = np.zeros(NCAT)
    s = sorted(cats)
    for k in range(draws):
        p[s[k % len(s)]] += 1.0 / draws
    return p


def masses(users, rng):
    """Per cell (user, channel, category, ratio): a spike's probability of falling in it and a
    legitimate event's, both over the hard set only."""
    ratio = np.linspace(10.0, 50.0, 801)  # spikes cost 10-50x the typical spend
    step = ratio[1] - ratio[0]
    big = np.zeros((NCAT, ratio.size))
    big[BIG_CATS] = np.where(ratio <= 30.0, 1.0 / 25.0, 0.0) / len(BIG_CATS)  # 5-30x
    lognormal = np.exp(-(np.log(ratio)[None, :] - np.log(SPEND_FACTOR)[:, None]) ** 2 /
                       (2 * SIGMA**2)) / (ratio[None, :] * SIGMA * np.sqrt(2 * np.pi))
    spike_out, legit_out = [], []
    for _ in range(users):
        cats = {GROCERY} | set(rng.integers(0, NCAT, 3).tolist())
        q16, q6 = category_probs(cats, 16), category_probs(cats, 6)
        spike_cat = 0.5 * q16
        spike_cat[SPIKE_CATS] += 0.5 / len(SPIKE_CATS)
        # not on a trip: 60% a regular merchant, 30% one of the user's categories, 10% any
        everyday_cat = 0.6 * q6 + 0.3 * q16 + 0.1 / NCAT
        amount = BIG_PER_TXN * big + (1 - BIG_PER_TXN) * everyday_cat[:, None] * lognormal
        for spike_ch, legit_ch in CHANNELS.values():
            spike_out.append((SPIKE_HOME_OWN * spike_ch * spike_cat[:, None] / 40.0 * step *
                              np.ones_like(ratio)).ravel())
            legit_out.append((TXN * NOT_TRIP * OWN_DEVICE * legit_ch * amount * step).ravel())
    return np.concatenate(spike_out) / users, np.concatenate(legit_out) / users


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=5000, help="users drawn (default 5000)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    spike, legit = masses(a.users, np.random.default_rng(a.seed))
    hard = spike.sum()
    order = np.argsort(-(spike / np.maximum(legit, 1e-300)))
    caught, false = np.cumsum(spike[order]), np.cumsum(legit[order])
    n_ep = sum(EPISODES.values())
    others = n_ep - EPISODES["amount_spike"]
    print(f"spikes at home, own device, home IP, pos or web: {hard:.3f} of all spikes")
    print("| false alerts per 10k legit events | spike recall at most | episode recall at most |")
    print("|---|---|---|")
    for fa in (0.5, 1, 2, 5, 10, 20):
        k = np.searchsorted(false, fa * 1e-4, side="right")
        spikes = 1 - hard + (caught[k - 1] if k else 0.0)
        print(f"| {fa:g} | {spikes:.3f} | {(others + EPISODES['amount_spike'] * spikes) / n_ep:.3f} |")
    need = (0.95 * n_ep - others) / EPISODES["amount_spike"]
    k = np.searchsorted(caught, need - (1 - hard))
    print(f"95% of episodes needs {need:.3f} of the spikes: at least {false[k] * 1e4:.2f} false "
          "alerts per 10,000 legitimate events")


if __name__ == "__main__":
    main()
