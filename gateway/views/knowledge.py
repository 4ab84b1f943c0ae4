"""The knowledge base (知识库): search, suggestions for a case, and the article workflow."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from dispatch.core.errors import NotFound
from dispatch.core.messages import Json, JsonValue
from dispatch.knowledge.articles import (
    KINDS,
    MAY_REVIEW,
    MAY_WRITE,
    STATUSES,
    ArticleCommand,
    ArticleContent,
    ArticleState,
    DraftArticle,
    ProposeArticle,
    PublishArticle,
    ReviewArticle,
    ReviseArticle,
    SubmitArticle,
    WithdrawArticle,
    load_article,
    new_article_id,
)
from dispatch.knowledge.index import IndexHolder
from dispatch.knowledge.read_model import list_articles as articles_of
from dispatch.knowledge.search import Hit
from gateway.auth import require
from gateway.http import BadRequest, field, json_response, limit_param, page, read_json
from gateway.services import SERVICES

READERS = ("agent", "dispatcher", "auditor", "unit")
INDEX = web.AppKey("knowledge_index", IndexHolder)
MAX_QUERY = 2000
SUGGESTIONS = 5


def _strings(body: Json, name: str) -> tuple[str, ...]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("bad_field", f"field {name!r} must be a list of strings")
    return tuple(value)


def _content(body: Json) -> ArticleContent:
    return ArticleContent(
        kind=field(body, "kind", str), title=field(body, "title", str), body=field(body, "body", str),
        short_answer=field(body, "short_answer", str, required=False) or "",
        categories=_strings(body, "categories"), keywords=_strings(body, "keywords"))


def _revisions(state: ArticleState) -> list[Json]:
    return [{"revision": n, "author": state.authors.get(n), **asdict(c)}
            for n, c in sorted(state.revisions.items())]


def _state(state: ArticleState) -> Json:
    return {
        "article_id": state.article_id, "version": state.version, "status": state.status,
        "revision": state.revision, "published_revision": state.published_revision,
        "source_case_id": state.source_case_id, "created_at": state.created_at,
        "updated_at": state.updated_at,
        "content": asdict(state.content) if state.content else None,
        "published": asdict(state.published) if state.published else None,
        "revisions": _revisions(state), "history": state.history,
    }


def _items(hits: list[Hit], *, answers: bool = False) -> list[Json]:
    keys = ("article_id", "title", "snippet", "score", "confidence", "kind")
    return [{k: getattr(h, k) for k in keys} | ({"short_answer": h.short_answer} if answers else {})
            for h in hits]


def _text_param(request: web.Request, name: str) -> str:
    text = request.query.get(name, "").strip()
    if not text:
        raise BadRequest("missing_parameter", f"{name} is required")
    if len(text) > MAX_QUERY:
        raise BadRequest("bad_parameter", f"{name} longer than {MAX_QUERY} characters")
    return text


async def search(request: web.Request) -> web.Response:
    """`GET /api/v1/knowledge/search?q=&category=&limit=`: Chinese text, pinyin or initials."""
    require(request, *READERS)
    query = _text_param(request, "q")
    limit = min(limit_param(request), 50)
    hits = await request.app[INDEX].search(request.app[SERVICES].pool, query,
                                           category=request.query.get("category") or None, k=limit)
    return json_response(page(_items(hits), None))


async def suggestions(request: web.Request) -> web.Response:
    """`GET /api/v1/knowledge/suggestions?category=&text=`: the best articles for a case being registered."""
    require(request, "agent", "dispatcher")
    text = _text_param(request, "text")
    limit = min(limit_param(request), 20) if "limit" in request.query else SUGGESTIONS
    hits = await request.app[INDEX].search(request.app[SERVICES].pool, text,
                                           category=request.query.get("category") or None, k=limit)
    return json_response(page(_items(hits, answers=True), None))


async def list_articles(request: web.Request) -> web.Response:
    """`GET /api/v1/knowledge/articles?status=&kind=`: by id, list envelope (a unit: live ones only)."""
    who = require(request, *READERS)
    limit = limit_param(request)
    status, kind = request.query.get("status") or None, request.query.get("kind") or None
    if status is not None and status not in STATUSES:
        raise BadRequest("bad_parameter", f"status must be one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise BadRequest("bad_parameter", f"kind must be one of {', '.join(KINDS)}")
    rows = await articles_of(request.app[SERVICES].pool, status=status, kind=kind,
                             after=request.query.get("cursor") or None, limit=limit + 1,
                             live=who.role == "unit")
    items = [asdict(r) for r in rows[:limit]]
    return json_response(page(items, rows[limit - 1].article_id if len(rows) > limit else None))


async def get_article(request: web.Request) -> web.Response:
    """`GET /api/v1/knowledge/articles/{article_id}`: folded from its stream, every revision."""
    who = require(request, *READERS)
    state = await load_article(request.app[SERVICES].store, request.match_info["article_id"])
    if state.version < 0 or (who.role == "unit" and state.published is None):
        raise NotFound(f"article {state.article_id} not found")
    view = _state(state)
    if who.role == "unit":  # drafts are the centre's work, one proposed from a case the caller's words
        view["content"] = view["published"]
        view["revisions"] = [r for r in view["revisions"] if r["revision"] == state.published_revision]
    return json_response(view)


async def create_article(request: web.Request) -> web.Response:
    """`POST /api/v1/knowledge/articles`: a draft, or `{from_case}` to propose a completed case."""
    who = require(request, *MAY_WRITE)
    body = await read_json(request)
    bus = request.app[SERVICES].bus
    case_id = field(body, "from_case", str, required=False)
    if case_id is not None:
        state = await bus.handle(ProposeArticle(
            case_id, who.actor, field(body, "kind", str, required=False) or "faq",
            field(body, "title", str, required=False), field(body, "body", str, required=False),
            field(body, "short_answer", str, required=False) or ""))
    else:
        article_id = field(body, "article_id", str, required=False) or new_article_id()
        state = await bus.handle(DraftArticle(article_id=article_id, actor=who.actor, content=_content(body)))
    return json_response(_state(state), status=201)


def _action(roles: tuple[str, ...], make: Any) -> Any:
    async def act(request: web.Request) -> web.Response:
        who = require(request, *roles)
        body = await read_json(request)
        common: dict[str, JsonValue] = {
            "article_id": request.match_info["article_id"], "actor": who.actor,
            "expected_version": field(body, "expected_version", int, required=False)}
        cmd: ArticleCommand = make(body, common)
        state = await request.app[SERVICES].bus.handle(cmd)
        return json_response(_state(state))
    return act


ACTIONS: dict[str, Any] = {
    "revise": _action(MAY_WRITE, lambda b, c: ReviseArticle(content=_content(b), **c)),
    "submit": _action(MAY_WRITE, lambda b, c: SubmitArticle(**c)),
    "review": _action(MAY_REVIEW, lambda b, c: ReviewArticle(
        approved=field(b, "approved", bool), note=field(b, "note", str, required=False) or "", **c)),
    "publish": _action(MAY_REVIEW, lambda b, c: PublishArticle(**c)),
    "withdraw": _action(MAY_REVIEW, lambda b, c: WithdrawArticle(reason=field(b, "reason", str), **c)),
}


PAGE = Path(__file__).parent.parent / "static" / "console" / "knowledge.html"


async def knowledge_page(request: web.Request) -> web.FileResponse:
    """`GET /knowledge`: the console's knowledge page (search and read; signs in like `GET /`)."""
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Add the routes of this module, and the search index they share."""
    app[INDEX] = IndexHolder()
    app.router.add_get("/knowledge", knowledge_page)
    app.router.add_get("/api/v1/knowledge/search", search)
    app.router.add_get("/api/v1/knowledge/suggestions", suggestions)
    app.router.add_get("/api/v1/knowledge/articles", list_articles)
    app.router.add_post("/api/v1/knowledge/articles", create_article)
    app.router.add_get("/api/v1/knowledge/articles/{article_id}", get_article)
    for name, handler in ACTIONS.items():
        app.router.add_post(f"/api/v1/knowledge/articles/{{article_id}}/{name}", handler)


def _op(summary: str, *, path_id: bool = False, body: Json | None = None, query: tuple[str, ...] = (),
        ok: str = "200") -> Json:
    params = [{"name": q, "in": "query", "required": q in ("q", "text"), "schema": {"type": "string"}}
              for q in query]
    if path_id:
        params.append({"name": "article_id", "in": "path", "required": True, "schema": {"type": "string"}})
    op: Json = {"summary": summary, "parameters": params, "responses": {
        ok: {"description": "article state, or list envelope {items, next}"},
        "400": {"description": "invalid input"}, "401": {"description": "no token"},
        "403": {"description": "role may not"}, "404": {"description": "no such article"},
        "409": {"description": "stale expected_version, or not allowed in the article's state"}}}
    if body is not None:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object", **body}}}}
    return op


_CONTENT: Json = {"required": ["kind", "title", "body"], "properties": {
    "kind": {"type": "string", "enum": list(KINDS)}, "title": {"type": "string"}, "body": {"type": "string"},
    "short_answer": {"type": "string"}, "categories": {"type": "array", "items": {"type": "string"}},
    "keywords": {"type": "array", "items": {"type": "string"}}, "expected_version": {"type": "integer"}}}

OPENAPI_PATHS: Json = {
    "/knowledge": {"get": {"summary": "The console's knowledge page (HTML; signs in as GET / does)",
                           "security": [],
                           "parameters": [], "responses": {"200": {"description": "HTML page"}}}},
    "/api/v1/knowledge/search": {"get": _op(
        "Search published articles: Chinese text, pinyin (tingdian) or initials (td); typos tolerated",
        query=("q", "category", "limit"))},
    "/api/v1/knowledge/suggestions": {"get": _op(
        "Articles suggested for a case being registered (category + text), with short answers",
        query=("category", "text", "limit"))},
    "/api/v1/knowledge/articles": {
        "get": _op("Articles by id", query=("status", "kind", "cursor", "limit")),
        "post": _op("Draft an article, or propose a completed case as one ({from_case})", ok="201",
                    body={**_CONTENT, "required": [], "properties": {
                        **_CONTENT["properties"], "article_id": {"type": "string"},
                        "from_case": {"type": "string"}}})},
    "/api/v1/knowledge/articles/{article_id}": {"get": _op("One article with every revision", path_id=True)},
    "/api/v1/knowledge/articles/{article_id}/revise": {"post": _op(
        "Write a new revision (the published one stays live until this is published)", path_id=True,
        body=_CONTENT)},
    "/api/v1/knowledge/articles/{article_id}/submit": {"post": _op("Send the draft for review",
                                                                   path_id=True)},
    "/api/v1/knowledge/articles/{article_id}/review": {"post": _op(
        "Approve, or send back with a note (never one's own revision)", path_id=True,
        body={"required": ["approved"], "properties": {"approved": {"type": "boolean"},
                                                       "note": {"type": "string"}}})},
    "/api/v1/knowledge/articles/{article_id}/publish": {"post": _op("Publish the approved revision",
                                                                    path_id=True)},
    "/api/v1/knowledge/articles/{article_id}/withdraw": {"post": _op(
        "Withdraw from search", path_id=True,
        body={"required": ["reason"], "properties": {"reason": {"type": "string"}}})},
}
