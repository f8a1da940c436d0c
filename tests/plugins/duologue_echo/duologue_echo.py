"""`echo/<anything>` answers with the number of messages it was sent (docs/architecture.md, "Add a provider")."""

from duologue.backends.base import Reply, Usage
from duologue.backends.provider import Provider
from duologue.records import utcnow


class EchoBackend:
    def __init__(self, model: str):
        self.model = model  # the full model string, e.g. "echo/one"

    async def complete(self, messages, sampling, on_event=None):
        now = utcnow()
        return Reply(
            text=f"echo of {len(messages)} messages",
            usage=Usage(prompt_tokens=len(messages), completion_tokens=4),
            finish_reason="stop",
            started_at=now,
            ended_at=now,
            latency=0.0,
        )

    async def aclose(self):
        pass


def make_backend(participant, provider, name):
    return EchoBackend(participant.model)


PROVIDER = Provider("echo", "echo", description="answers with the number of messages it was sent", make=make_backend)
