"""Articles as reference data: a GeoJSON feature of `kind: article` (no geometry) loaded by `intake load`.

Properties: `id`, `article_kind` (policy, procedure, faq, outage_notice),
`title`, `body`, `short_answer`, `categories` and `keywords` (lists). Loading
publishes the article at once (the loader stands for the reviewed source); an
unchanged article writes nothing, a changed one is a new published revision.
"""

from __future__ import annotations

from dispatch.core.bus import Send
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Json, JsonValue
from dispatch.knowledge.articles import ArticleContent, ArticleState, ImportArticle, load_article
from eventstore import EventStore

KIND = "article"


def properties_of(feature: JsonValue) -> Json | None:
    """The properties of an article feature, or None for any other feature."""
    props = feature.get("properties") if isinstance(feature, dict) else None
    return props if isinstance(props, dict) and props.get("kind") == KIND else None


def _strings(props: Json, name: str) -> tuple[str, ...]:
    value = props.get(name) or []
    if isinstance(value, str):
        value = [v for v in value.split(";") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidCommand(f"{name} must be a list of strings", field=name)
    return tuple(value)


def import_command(props: Json, actor: str) -> ImportArticle:
    """The command importing one article feature; `InvalidCommand` names a bad property."""
    def text(name: str) -> str:
        value = props.get(name) or ""
        if not isinstance(value, str):
            raise InvalidCommand(f"{name} must be text", field=name)
        return value

    if not text("id"):
        raise InvalidCommand("an article needs an id", field="id")
    content = ArticleContent(text("article_kind") or "faq", text("title"), text("body"), text("short_answer"),
                             _strings(props, "categories"), _strings(props, "keywords"))
    return ImportArticle(article_id=text("id"), actor=actor, content=content)


async def load(handle: Send, store: EventStore, props: Json, actor: str) -> str:
    """Import one article: `recorded`, `updated` or `unchanged`."""
    cmd = import_command(props, actor)
    before = (await load_article(store, cmd.article_id)).version
    after = await handle(cmd)
    assert isinstance(after, ArticleState)
    if after.version == before:
        return "unchanged"
    return "recorded" if before < 0 else "updated"
