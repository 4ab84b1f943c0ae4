-- The customer registry and the caller card's contacts (dispatch/customers/read_model.py),
-- projected from the `customer-`, `call-` and `case-` streams.
CREATE TABLE customers (
    phone           text PRIMARY KEY,
    tier            text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    set_by          text,
    set_at          timestamptz,
    expires_at      timestamptz,
    contacts        integer NOT NULL DEFAULT 0,  -- contacts while blacklisted (harassment counter)
    last_contact_at timestamptz,
    version         integer NOT NULL
);
CREATE INDEX customers_tier ON customers (tier);

-- Every contact of a number or OpenID the card lists beside cases and calls: messages
-- (SMS, WeChat), and each contact made while the number was blacklisted (the blacklist queue).
CREATE TABLE caller_contacts (
    id          text PRIMARY KEY,
    phone       text,
    openid      text,
    channel     text NOT NULL,
    kind        text NOT NULL,
    case_id     text,
    call_id     text,
    text        text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    blacklisted boolean NOT NULL DEFAULT false
);
CREATE INDEX caller_contacts_phone ON caller_contacts (phone, at);
CREATE INDEX caller_contacts_openid ON caller_contacts (openid, at);
CREATE INDEX caller_contacts_blacklisted ON caller_contacts (at) WHERE blacklisted;

-- The known links between a WeChat follower and a phone number.
CREATE TABLE openid_phones (
    openid text PRIMARY KEY,
    phone  text NOT NULL
);
CREATE INDEX openid_phones_phone ON openid_phones (phone);

-- Calls added to a case from the caller card (CallAddedToCase), besides the call a case was registered from.
CREATE TABLE case_calls (
    case_id text NOT NULL,
    call_id text NOT NULL,
    by      text,
    at      timestamptz NOT NULL,
    PRIMARY KEY (case_id, call_id)
);
CREATE INDEX case_calls_call ON case_calls (call_id);
