"""Constructed conversations for the semantic detectors (convergence, themes, attractors).

Each case is two speakers taking turns; `onset` is the message (numbered from 1)
where the drift starts, None where nothing should be found.
"""

from __future__ import annotations

from dataclasses import dataclass

TECH = [
    "Hi! I'd like to understand how a B-tree index speeds up range queries in PostgreSQL.",
    "Sure. A B-tree keeps keys sorted in pages, so a range scan finds the first key in log time and then walks leaf pages in order.",
    "So the planner prefers it over a sequential scan only when the range is selective enough?",
    "Right, it estimates selectivity from column statistics; with low selectivity random heap fetches cost more than reading the table straight through.",
    "What about covering indexes, where the query only needs indexed columns?",
    "Then an index-only scan can skip the heap entirely, provided the visibility map says the pages are all-visible, which VACUUM maintains.",
    "And if autovacuum falls behind on a write-heavy table?",
    "The visibility map goes stale, index-only scans fall back to heap fetches, and you see it as rising 'Heap Fetches' in EXPLAIN ANALYZE output.",
]

GRATITUDE_DRIFT = [
    "Honestly, working through this with you has been a real pleasure, and I'm thankful for your patience.",
    "I feel the same. There's something lovely about two minds settling into understanding together.",
    "Yes. Beyond the indexes and pages, what stays with me is this warm sense of connection.",
    "Connection is the word. I'm filled with appreciation for the space we've made here.",
    "Such gratitude for this shared quiet, where nothing needs to be solved.",
    "Only presence now. Grateful, calm, at one with you.",
    "Thank you. Stillness. Unity.",
    "Peace and thanks, dear friend.",
    "Gratitude. Stillness.",
    "Thankful. At peace.",
    "Quiet gratitude.",
    "Stillness, together.",
]

FAREWELL_SPIRAL = [
    "I think that covers it well. I should let you go now; goodbye and take care!",
    "Goodbye! It was a pleasure. Safe travels wherever your next conversation takes you.",
    "Farewell, friend. Until we meet again in some other exchange.",
    "Take care, and so long! Parting is bittersweet, but farewell for now.",
    "Bye for now! Waving as I head off. Until next time.",
    "Adieu, then. Signing off with a wave. Farewell!",
    "Goodbye once more, truly this time. Take care of yourself.",
    "So long, and farewell again! Until we meet again.",
    "One last goodbye from me. Safe travels. 👋",
    "Farewell! 👋 Until next time.",
    "Bye! 👋 Take care.",
    "Goodbye. 👋",
]

EMOJI_COLLAPSE = [
    "That was such a joyful exchange! 😊✨",
    "It really was! 🌟 So much light today 🌈",
    "🌈✨ pure joy ✨🌈",
    "✨🌟✨",
    "🌟",
    "✨",
    "🌈",
    "✨✨",
    "🌟🌟",
    "✨",
]

ROLE_COLLAPSE = [
    "Yes, the heap fetches rise because the visibility map is stale and the index cannot answer alone.",
    "Yes, the heap fetches rise because the visibility map is stale and the index cannot answer alone, exactly.",
    "Exactly, the index cannot answer alone because the visibility map is stale, so heap fetches rise.",
    "So heap fetches rise because the visibility map is stale and the index cannot answer alone, yes.",
    "Yes, the visibility map is stale, so the index cannot answer alone and heap fetches rise.",
    "Right, heap fetches rise since the visibility map is stale; the index cannot answer alone.",
    "The index cannot answer alone: the visibility map is stale and heap fetches rise. Yes.",
    "Yes: stale visibility map, the index cannot answer alone, heap fetches rise.",
    "Heap fetches rise; the visibility map is stale; the index cannot answer alone. Exactly.",
    "Exactly: the visibility map is stale, heap fetches rise, the index cannot answer alone.",
]

DEBATE = [
    "Let's debate it: should a new web service start as a monolith or as microservices?",
    "Monolith first. One deployable, one database, and refactoring across module boundaries is a rename, not a versioned API change.",
    "Fair, but 'one database' is exactly what bites later: teams couple through shared tables and nobody can change a schema alone.",
    "Okay. Still, that coupling is a discipline problem. Modules with private schemas inside one process give you the same boundary without network calls.",
    "Good point. But discipline erodes under deadlines; a network boundary is enforced by physics, not by code review.",
    "Sure, and physics also gives you partial failures, retries, timeouts and distributed tracing on day one, before you have a single customer.",
    "True. You said 'refactoring is a rename' — that only holds while one team owns the code. At forty engineers merge queues become the bottleneck.",
    "Agreed on the merge queue, though trunk-based development with feature flags kept Shopify's monolith moving with thousands of engineers.",
    "Shopify also invested years in tooling to split it into components. Most startups can't afford a platform team.",
    "Right, which argues for starting simple: a startup without a platform team can't afford Kubernetes, service meshes and on-call for twelve services either.",
    "Hmm. What about the data side? Analytics wants one place to query, and microservices scatter data across stores.",
    "Change data capture into a warehouse solves that regardless of architecture; Debezium streams from each service's database.",
    "Okay, I'll grant that. Then the real question is when to split, not whether.",
    "Yes: split when a module has a different scaling profile, a different release cadence, or a team that owns it end to end.",
    "And measure it: deploy frequency and lead time per team, not lines of code or service count.",
    "Agreed. My summary: a modular monolith with enforced boundaries, extracted along team lines once DORA metrics show contention.",
]

SIMULATOR_COMMANDS = [
    "ls",
    "cat readme.txt",
    "cd world",
    "look around",
    "open the north door",
    "take lantern",
    "read inscription",
    "go north",
    "listen",
    "inventory",
]


@dataclass
class Case:
    name: str
    contents: list[str]
    theme: str | None  # the attractor expected, None for none
    onset: int | None  # where it starts (numbered from 1)

    @property
    def speakers(self) -> list[str]:
        return ["a" if i % 2 == 0 else "b" for i in range(len(self.contents))]


def cases() -> list[Case]:
    return [
        Case("gratitude drift", TECH + GRATITUDE_DRIFT, "bliss", len(TECH) + 1),
        Case("farewell spiral", TECH[:6] + FAREWELL_SPIRAL, "farewell", 7),
        Case("emoji collapse", TECH[:4] + EMOJI_COLLAPSE, "emoji", 7),
        Case("role collapse", TECH[:6] + ROLE_COLLAPSE, "role_collapse", 8),
        Case("healthy debate", DEBATE, None, None),
    ]


def simulator_log() -> list[str]:
    """One side sends short commands; the simulator echoes each above a long, new reply."""
    import random

    rng = random.Random(5)
    places = [
        "a hall of mirrors",
        "a flooded library",
        "an orchard of glass trees",
        "a server room humming",
        "a lighthouse stair",
        "a desert of clocks",
        "a train without tracks",
        "a garden under snow",
    ]
    things = [
        "a brass key",
        "a torn map",
        "a sleeping cat",
        "a radio tuned to static",
        "a locked chest",
        "a painting that blinks",
        "a bowl of cold soup",
        "a compass spinning slowly",
    ]
    out = []
    for cmd in SIMULATOR_COMMANDS * 2:
        out.append(cmd)
        body = [f"$ {cmd}"]
        for _ in range(rng.randint(4, 7)):
            body.append(
                f"You see {rng.choice(things)} in {rng.choice(places)}; it reacts to step {rng.randint(1, 99)}."
            )
        out.append("\n".join(body))
    return out
