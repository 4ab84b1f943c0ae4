"""The knowledge base on real PostgreSQL: the article workflow over HTTP, search, suggestions,
proposing a completed case, and self-service answers to SMS and WeChat consultations."""

# ruff: noqa: E501 (Chinese fixtures: each character counts two columns)

from __future__ import annotations

import json
from typing import Any

from dispatch.cases.actions import CompleteCase, ConfirmCase, DispatchCase
from dispatch.cases.events import CallerInfo
from dispatch.cases.read_model import CasesProjection
from dispatch.cases.registration import RegisterCase
from dispatch.cases.state import load_case
from dispatch.knowledge.articles import ArticleContent, ImportArticle
from dispatch.knowledge.index import IndexHolder
from dispatch.knowledge.read_model import KnowledgeProjection
from dispatch.knowledge.self_service import SelfServicePolicy
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from tests.conftest import auth

ARTICLE = {"kind": "faq", "title": "如何查询计划停电信息", "body": "计划停电会提前7天在网上国网App公告。",
           "short_answer": "计划停电提前7天在网上国网App公告。", "categories": ["consultation", "power_fault"],
           "keywords": ["停电查询"]}
GAS = ArticleContent("faq", "闻到燃气味怎么办", "立即关闭燃气总阀，打开门窗通风，不要开关电器。",
                     "请立即关闭燃气总阀、开窗通风，到室外拨打燃气抢修电话。", ("consultation",), ("燃气泄漏", "煤气味"))


async def project(services: Any) -> None:
    await ProjectionRunner(services.store, KnowledgeProjection()).run_until_caught_up()


async def call(api: Any, method: str, path: str, token: str, body: Any = None, status: int = 200) -> Any:
    resp = await api.request(method, path, json=body, headers=auth(token))
    data = await resp.json()
    assert resp.status == status, data
    return data


async def search(api: Any, q: str, token: str = "t-agent") -> list[str]:
    data = await call(api, "GET", f"/api/v1/knowledge/search?q={q}", token)
    return [item["article_id"] for item in data["items"]]


async def test_an_article_goes_from_draft_through_review_to_search_and_out_again(api: Any, wired: Any) -> None:
    draft = await call(api, "POST", "/api/v1/knowledge/articles", "t-agent", ARTICLE, status=201)
    aid = draft["article_id"]
    base = f"/api/v1/knowledge/articles/{aid}"
    await call(api, "POST", "/api/v1/knowledge/articles", "t-unit", ARTICLE, status=403)
    await call(api, "POST", f"{base}/submit", "t-agent", {"expected_version": 0})
    await call(api, "POST", f"{base}/review", "t-agent2", {"approved": True}, status=403)  # agents do not review
    await call(api, "POST", f"{base}/publish", "t-dispatcher", {}, status=409)  # not approved yet
    await call(api, "POST", f"{base}/review", "t-dispatcher", {"approved": True, "expected_version": 0},
               status=409)  # stale
    await call(api, "POST", f"{base}/review", "t-dispatcher", {"approved": True})
    await project(wired)
    assert await search(api, "tingdian") == []  # approved is not published
    live = await call(api, "POST", f"{base}/publish", "t-dispatcher", {})
    assert (live["status"], live["published_revision"]) == ("published", 1)
    await project(wired)
    for q in ("停电", "tingdian", "td", "停店"):
        assert await search(api, q) == [aid], q
    revised = await call(api, "POST", f"{base}/revise", "t-agent2", {**ARTICLE, "title": "计划停电查询（修订）"})
    assert [r["title"] for r in revised["revisions"]] == [ARTICLE["title"], "计划停电查询（修订）"]
    await project(wired)
    item = (await call(api, "GET", "/api/v1/knowledge/search?q=停电", "t-unit"))["items"][0]
    assert item["title"] == ARTICLE["title"] and set(item) >= {"article_id", "title", "snippet", "score"}
    # a unit reads the live revision of an article being revised, not the draft
    assert [a["article_id"] for a in (await call(api, "GET", "/api/v1/knowledge/articles", "t-unit"))["items"]] == [aid]
    seen = await call(api, "GET", base, "t-unit")
    assert seen["content"]["title"] == ARTICLE["title"] and [r["revision"] for r in seen["revisions"]] == [1]
    await call(api, "POST", f"{base}/withdraw", "t-dispatcher", {"reason": "政策调整"})
    await project(wired)
    assert await search(api, "tingdian") == []
    listed = await call(api, "GET", "/api/v1/knowledge/articles?status=draft", "t-auditor")
    assert listed["items"] == []
    withdrawn = await call(api, "GET", "/api/v1/knowledge/articles?status=withdrawn", "t-auditor")
    assert [a["article_id"] for a in withdrawn["items"]] == [aid]


async def test_suggestions_for_a_case_being_registered(api: Any, wired: Any) -> None:
    await wired.bus.handle(ImportArticle(article_id="KBGAS", actor="loader", content=GAS))
    await wired.bus.handle(ImportArticle(article_id="KBOUT", actor="loader", content=ArticleContent(
        "faq", "计划停电查询", "计划停电提前7天公告。", "提前7天公告。", ("power_fault",))))
    await project(wired)
    data = await call(api, "GET", "/api/v1/knowledge/suggestions?category=consultation&text=家里有煤气味怎么办",
                      "t-agent")
    assert data["items"][0]["article_id"] == "KBGAS" and data["items"][0]["short_answer"] == GAS.short_answer
    await call(api, "GET", "/api/v1/knowledge/suggestions?text=x", "t-unit", status=403)
    await call(api, "GET", "/api/v1/knowledge/suggestions?category=consultation", "t-agent", status=400)


async def test_a_completed_case_is_proposed_as_a_draft_article(api: Any, wired: Any) -> None:
    await wired.pool.execute("INSERT INTO ref_units (id, name, phone) VALUES ('U001', 'crew', '13326435929')")
    case = await wired.bus.handle(RegisterCase(category="consultation", channel="phone",
                                               description="小区路灯不亮找谁修", caller=CallerInfo(phone="13800138000")))
    await call(api, "POST", "/api/v1/knowledge/articles", "t-agent", {"from_case": case.case_id}, status=409)
    state = await wired.bus.handle(DispatchCase(case_id=case.case_id, to="U001"))
    state = await wired.bus.handle(ConfirmCase(case_id=case.case_id, actor="unit:U001"))
    await wired.bus.handle(CompleteCase(case_id=case.case_id, actor="unit:U001", result="已告知由路灯管理所维修"))
    draft = await call(api, "POST", "/api/v1/knowledge/articles", "t-agent", {"from_case": case.case_id},
                       status=201)
    assert draft["status"] == "draft" and draft["source_case_id"] == case.case_id
    assert "路灯" in draft["content"]["body"] and draft["content"]["short_answer"] == "已告知由路灯管理所维修"
    await call(api, "POST", "/api/v1/knowledge/articles", "t-agent", {"from_case": case.case_id}, status=409)
    assert state.version >= 0


async def _proposed_from_a_handled_case(api: Any, wired: Any, unit: str) -> Any:
    """A draft proposed from a case whose caller, 王五, named himself and his address, handled by `unit`."""
    await wired.pool.execute("INSERT INTO ref_units (id, name, phone) VALUES ($1, 'crew', '13326435929')", unit)
    case = await wired.bus.handle(RegisterCase(
        category="consultation", channel="phone", description="我是王五，住人民路8号，小区路灯不亮找谁修",
        caller=CallerInfo(name="王五", phone="13800138000")))
    await wired.bus.handle(DispatchCase(case_id=case.case_id, to=unit))
    await wired.bus.handle(ConfirmCase(case_id=case.case_id, actor=f"unit:{unit}"))
    await wired.bus.handle(CompleteCase(case_id=case.case_id, actor=f"unit:{unit}", result="已告知王五由路灯管理所维修"))
    return await call(api, "POST", "/api/v1/knowledge/articles", "t-agent", {"from_case": case.case_id},
                      status=201)


async def test_an_article_proposed_from_a_case_loses_the_callers_words_when_he_is_erased(
        api: Any, wired: Any) -> None:
    """A draft proposed from a case copies the caller's description and the unit's result (his
    name, his address): erasing him erases them in the article's first revision too - its events,
    the article's API view and the read model - as in the case itself; a revision an agent wrote
    afterwards stays. (They were kept in plaintext, readable by every reader of the knowledge base.)"""
    draft = await _proposed_from_a_handled_case(api, wired, "U001")
    path = f"/api/v1/knowledge/articles/{draft['article_id']}"
    revised = await call(api, "POST", f"{path}/revise", "t-agent", {
        "expected_version": draft["version"], **ARTICLE, "title": "小区路灯不亮找谁修"})
    assert revised["revision"] == 2
    await ProjectionRunner(wired.store, CasesProjection(wired.clock)).run_until_caught_up()
    await project(wired)
    await call(api, "POST", "/api/v1/subjects/13800138000/erase", "t-admin",
               {"reason": "公民申请删除个人信息", "legal_basis": "request"})
    await project(wired)

    article = await call(api, "GET", path, "t-agent")
    assert "王五" not in json.dumps(article, ensure_ascii=False)
    assert article["revisions"][1]["title"] == "小区路灯不亮找谁修"  # the agent's own revision stays
    stored = await wired.pool.fetch("SELECT r::text AS row FROM knowledge_revisions r UNION ALL "
                                    "SELECT a::text FROM knowledge_articles a")
    assert not [r["row"] for r in stored if "王五" in r["row"]]


async def test_a_unit_reads_no_draft_proposed_from_a_case_not_its_own(api: Any, wired: Any) -> None:
    """A unit reads published articles only: a draft proposed from a case is the caller's words
    (masked for a unit on a case not assigned to it), which a unit read in full through the
    article and the article list."""
    draft = await _proposed_from_a_handled_case(api, wired, "U002")
    await project(wired)
    path = f"/api/v1/knowledge/articles/{draft['article_id']}"
    assert "王五" in json.dumps(await call(api, "GET", path, "t-agent"), ensure_ascii=False)
    await call(api, "GET", path, "t-unit", status=404)
    for query in ("", "?status=draft"):
        listed = await call(api, "GET", f"/api/v1/knowledge/articles{query}", "t-unit")
        assert listed["items"] == [], query


async def answer(services: Any) -> SelfServicePolicy:
    await project(services)
    policy = SelfServicePolicy(services.bus.handle, services.store, services.pool, IndexHolder())
    await ReactorRunner(services.store, policy).run_until_caught_up()
    return policy


async def notifications(services: Any, case_id: str) -> list[Any]:
    return await services.pool.fetch(
        "SELECT channel, to_addr, body, reason FROM notification_outbox WHERE case_id = $1 AND reason = $2",
        case_id, "answered_by_knowledge_base")


async def test_a_confident_sms_consultation_is_answered_and_closed_and_a_reply_reaches_a_person(wired: Any) -> None:
    await wired.bus.handle(ImportArticle(article_id="KBGAS", actor="loader", content=GAS))
    first = await wired.bus.handle(RegisterCase(category="consultation", channel="sms",
                                                description="你好，家里有煤气味怎么办", caller=CallerInfo(phone="13800138000")))
    await answer(wired)
    [sent] = await notifications(wired, first.case_id)
    assert (sent["channel"], sent["to_addr"]) == ("sms", "13800138000")
    assert GAS.short_answer in sent["body"] and "回复" in sent["body"]
    closed = await load_case(wired.store, first.case_id)
    assert closed.status == "closed"
    second = await wired.bus.handle(RegisterCase(category="consultation", channel="sms",
                                                 description="煤气味还是很大", caller=CallerInfo(phone="13800138000")))
    await answer(wired)  # the citizen replied: a person answers this one
    assert await notifications(wired, second.case_id) == []
    assert (await load_case(wired.store, second.case_id)).status != "closed"


async def test_wechat_is_answered_on_wechat_and_unsure_or_other_categories_are_left_to_people(wired: Any) -> None:
    await wired.bus.handle(ImportArticle(article_id="KBGAS", actor="loader", content=GAS))
    wechat = await wired.bus.handle(RegisterCase(category="consultation", channel="wechat",
                                                 description="闻到燃气味怎么办", caller=CallerInfo(openid="oUSER1")))
    unsure = await wired.bus.handle(RegisterCase(category="consultation", channel="sms",
                                                 description="银行卡被冻结了燃气费交不了", caller=CallerInfo(phone="13900139000")))
    phone = await wired.bus.handle(RegisterCase(category="consultation", channel="phone",
                                                description="闻到燃气味怎么办", caller=CallerInfo(phone="13700137000")))
    complaint = await wired.bus.handle(RegisterCase(category="complaint", channel="sms",
                                                    description="闻到燃气味怎么办", caller=CallerInfo(phone="13600136000")))
    await answer(wired)
    [sent] = await notifications(wired, wechat.case_id)
    assert (sent["channel"], sent["to_addr"]) == ("wechat", "oUSER1")
    for other in (unsure, phone, complaint):
        assert await notifications(wired, other.case_id) == []
        assert (await load_case(wired.store, other.case_id)).status != "closed"
    await answer(wired)  # reacting again sends nothing new
    assert len(await notifications(wired, wechat.case_id)) == 1


async def test_an_answered_consultation_gets_one_reply_and_an_unanswered_one_the_acknowledgement(
        wired: Any) -> None:
    from dispatch.notify.outbox import AcknowledgementPolicy

    await wired.bus.handle(ImportArticle(article_id="KBGAS", actor="loader", content=GAS))
    answered = await wired.bus.handle(RegisterCase(category="consultation", channel="sms",
                                                   description="闻到燃气味怎么办", caller=CallerInfo(phone="13800138000")))
    unsure = await wired.bus.handle(RegisterCase(category="consultation", channel="sms",
                                                 description="银行卡被冻结了燃气费交不了",
                                                 caller=CallerInfo(phone="13900139000")))
    wechat = await wired.bus.handle(RegisterCase(category="consultation", channel="wechat",
                                                 description="闻到燃气味怎么办",
                                                 caller=CallerInfo(phone="13500135000", openid="oUSER2")))
    phoned = await wired.bus.handle(RegisterCase(category="consultation", channel="phone",
                                                 description="闻到燃气味怎么办", caller=CallerInfo(phone="13700137000")))
    complaint = await wired.bus.handle(RegisterCase(category="complaint", channel="sms",
                                                    description="燃气公司服务太差", caller=CallerInfo(phone="13600136000")))
    for _ in range(2):  # both policies, and again: a repeated reaction sends nothing more
        await ReactorRunner(wired.store, AcknowledgementPolicy(wired.bus.handle, wired.store)).run_until_caught_up()
        await answer(wired)

    async def replies(case_id: str) -> list[tuple[str, str]]:
        rows = await wired.pool.fetch("SELECT channel, reason FROM notification_outbox WHERE case_id = $1 "
                                      "ORDER BY id", case_id)
        return [(r["channel"], r["reason"]) for r in rows]

    assert await replies(answered.case_id) == [("sms", "answered_by_knowledge_base")]
    assert await replies(wechat.case_id) == [("wechat", "answered_by_knowledge_base")]
    assert await replies(unsure.case_id) == [("sms", "accepted")]
    assert await replies(phoned.case_id) == [("sms", "accepted")]
    assert await replies(complaint.case_id) == [("sms", "accepted")]
