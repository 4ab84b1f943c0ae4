"""The article workflow's pure rules: who may do what, in which state, and every revision kept."""

# ruff: noqa: E501 (Chinese fixtures: each character counts two columns)

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.core.messages import Event
from dispatch.knowledge.articles import (
    DECIDERS,
    ArticleCommand,
    ArticleContent,
    ArticleState,
    DraftArticle,
    ImportArticle,
    PublishArticle,
    ReviewArticle,
    ReviseArticle,
    SubmitArticle,
    WithdrawArticle,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
V1 = ArticleContent("faq", "计划停电查询", "计划停电提前7天公告。", "提前7天公告。", ("consultation",))
V2 = ArticleContent("faq", "计划停电查询", "计划停电提前7天在网上国网公告。", "网上国网查询。")


def run(state: ArticleState, cmd: ArticleCommand) -> list[Event]:
    events = list(DECIDERS[type(cmd)](state, cmd, NOW))
    for evt in events:
        state.apply(evt, state.version + 1)
    return events


def published(by: str = "agent:A001") -> ArticleState:
    s = ArticleState("KB1")
    run(s, DraftArticle(article_id="KB1", actor=by, content=V1))
    run(s, SubmitArticle(article_id="KB1", actor=by))
    run(s, ReviewArticle(article_id="KB1", actor="dispatcher:D001", approved=True))
    run(s, PublishArticle(article_id="KB1", actor="dispatcher:D001"))
    return s


def test_draft_review_publish_and_a_revision_keeps_the_published_one_live() -> None:
    s = published()
    assert (s.status, s.published_revision) == ("published", 1)
    run(s, ReviseArticle(article_id="KB1", actor="agent:A002", content=V2))
    assert (s.status, s.revision, s.published_revision, s.published) == ("draft", 2, 1, V1)
    run(s, SubmitArticle(article_id="KB1", actor="agent:A002"))
    run(s, ReviewArticle(article_id="KB1", actor="dispatcher:D001", approved=True))
    run(s, PublishArticle(article_id="KB1", actor="dispatcher:D001"))
    assert s.published == V2 and s.revisions == {1: V1, 2: V2}  # every version kept


@pytest.mark.parametrize(("cmd", "why"), [
    (DraftArticle(article_id="KB9", actor="unit:U001", content=V1), "unit may not draft"),
    (DraftArticle(article_id="KB9", actor="auditor:AU01", content=V1), "auditor may not draft"),
])
def test_roles_that_may_not_draft(cmd: ArticleCommand, why: str) -> None:
    with pytest.raises(NotAllowed):
        run(ArticleState("KB9"), cmd)


def test_agents_may_not_review_publish_or_withdraw() -> None:
    s = ArticleState("KB1")
    run(s, DraftArticle(article_id="KB1", actor="agent:A001", content=V1))
    run(s, SubmitArticle(article_id="KB1", actor="agent:A001"))
    with pytest.raises(NotAllowed):
        run(s, ReviewArticle(article_id="KB1", actor="agent:A002", approved=True))
    live = published()
    with pytest.raises(NotAllowed):
        run(live, WithdrawArticle(article_id="KB1", actor="agent:A001", reason="过时"))


def test_nobody_reviews_their_own_revision() -> None:
    s = ArticleState("KB1")
    run(s, DraftArticle(article_id="KB1", actor="dispatcher:D001", content=V1))
    run(s, SubmitArticle(article_id="KB1", actor="dispatcher:D001"))
    with pytest.raises(NotAllowed, match="own revision"):
        run(s, ReviewArticle(article_id="KB1", actor="dispatcher:D001", approved=True))
    run(s, ReviewArticle(article_id="KB1", actor="dispatcher:D002", approved=True))


def test_only_an_approved_revision_is_published_and_a_rejection_needs_a_note() -> None:
    s = ArticleState("KB1")
    run(s, DraftArticle(article_id="KB1", actor="agent:A001", content=V1))
    with pytest.raises(NotAllowed):
        run(s, PublishArticle(article_id="KB1", actor="dispatcher:D001"))
    run(s, SubmitArticle(article_id="KB1", actor="agent:A001"))
    with pytest.raises(InvalidCommand):
        run(s, ReviewArticle(article_id="KB1", actor="dispatcher:D001", approved=False))
    run(s, ReviewArticle(article_id="KB1", actor="dispatcher:D001", approved=False, note="补充依据"))
    assert s.status == "draft"
    with pytest.raises(NotAllowed):
        run(s, PublishArticle(article_id="KB1", actor="dispatcher:D001"))


def test_withdrawn_articles_leave_search_and_a_second_draft_of_one_id_is_refused() -> None:
    s = published()
    run(s, WithdrawArticle(article_id="KB1", actor="dispatcher:D001", reason="政策调整"))
    assert (s.status, s.published_revision) == ("withdrawn", None)
    with pytest.raises(NotAllowed):
        run(s, DraftArticle(article_id="KB1", actor="agent:A001", content=V1))


def test_content_is_checked() -> None:
    with pytest.raises(InvalidCommand, match="kind"):
        run(ArticleState("KB2"), DraftArticle(article_id="KB2", actor="agent:A001",
                                             content=ArticleContent("rumour", "t", "b")))
    with pytest.raises(InvalidCommand, match="title"):
        run(ArticleState("KB2"), DraftArticle(article_id="KB2", actor="agent:A001",
                                             content=ArticleContent("faq", "  ", "b")))


def test_an_article_is_written_for_case_categories_only() -> None:
    # Catches: a category no case has (a typo, "power") accepted, so the article's boost for its
    # category silently never applies; the case categories are CONTRACT.md's list.
    with pytest.raises(InvalidCommand, match="categories") as caught:
        run(ArticleState("KB2"), DraftArticle(article_id="KB2", actor="agent:A001",
                                             content=ArticleContent("faq", "t", "b", categories=("power", "consultation"))))
    assert caught.value.field == "categories" and "power" in str(caught.value)
    s = ArticleState("KB2")
    run(s, DraftArticle(article_id="KB2", actor="agent:A001",
                        content=ArticleContent("faq", "t", "b", categories=("power_fault", "power_fault"))))
    assert s.content is not None and s.content.categories == ("power_fault",)


def test_import_publishes_at_once_writes_nothing_when_unchanged_and_is_the_loaders_alone() -> None:
    s = ArticleState("KB3")
    assert [type(e).__name__ for e in run(s, ImportArticle(article_id="KB3", actor="loader", content=V1))] == [
        "ArticleDrafted", "ArticlePublished"]
    assert run(s, ImportArticle(article_id="KB3", actor="loader", content=V1)) == []
    assert [type(e).__name__ for e in run(s, ImportArticle(article_id="KB3", actor="loader", content=V2))] == [
        "ArticleRevised", "ArticlePublished"]
    with pytest.raises(NotAllowed):
        run(s, ImportArticle(article_id="KB3", actor="agent:A001", content=V1))
