-- The knowledge base's read model (dispatch/knowledge/read_model.py): each article's
-- workflow state and every revision's content; `knowledge_index` counts the changes,
-- so each process's search index (dispatch/knowledge/index.py) knows when to rebuild.
CREATE TABLE knowledge_articles (
    article_id         text PRIMARY KEY,
    status             text NOT NULL,
    kind               text NOT NULL,
    title              text NOT NULL,
    revision           integer NOT NULL,
    published_revision integer,
    source_case_id     text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            integer NOT NULL
);
CREATE INDEX knowledge_articles_status ON knowledge_articles (status, updated_at DESC);
CREATE TABLE knowledge_revisions (
    article_id   text NOT NULL,
    revision     integer NOT NULL,
    kind         text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    short_answer text NOT NULL,
    categories   text[] NOT NULL,
    keywords     text[] NOT NULL,
    author       text NOT NULL,
    written_at   timestamptz NOT NULL,
    PRIMARY KEY (article_id, revision)
);
CREATE TABLE knowledge_index (
    id         integer PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
);
