-- Platform users, companies, memberships, API keys, auth sessions and tokens, login attempts,
-- the mail outbox and the audit log.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    is_platform_admin boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL,
    password_changed_at timestamp NOT NULL
);

CREATE TABLE companies (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at timestamp NOT NULL,
    deleted_at timestamp
);
-- Names are unique per owner (case-insensitively), never globally.
CREATE UNIQUE INDEX companies_owner_name ON companies (owner_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    id uuid PRIMARY KEY,
    company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('viewer', 'member', 'admin', 'owner')),
    created_at timestamp NOT NULL,
    UNIQUE (company_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('write', 'read')),
    public_id text NOT NULL UNIQUE,
    secret_digest text NOT NULL,
    label text NOT NULL DEFAULT '',
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamp NOT NULL,
    last_used_at timestamp,
    expires_at timestamp,
    revoked_at timestamp
);
CREATE INDEX api_keys_company ON api_keys (company_id, created_at);

CREATE TABLE auth_sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamp NOT NULL,
    revoked_at timestamp
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY,
    family_id uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    token_digest text NOT NULL UNIQUE,
    created_at timestamp NOT NULL,
    expires_at timestamp NOT NULL,
    used_at timestamp
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE one_time_tokens (
    id uuid PRIMARY KEY,
    purpose text NOT NULL CHECK (purpose IN ('reset', 'invite')),
    token_digest text NOT NULL UNIQUE,
    email text NOT NULL,
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
    role text,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamp NOT NULL,
    expires_at timestamp NOT NULL,
    used_at timestamp
);
CREATE INDEX one_time_tokens_company ON one_time_tokens (company_id, created_at);

CREATE TABLE login_attempts (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    ip text NOT NULL,
    succeeded boolean NOT NULL,
    created_at timestamp NOT NULL
);
CREATE INDEX login_attempts_email ON login_attempts (email, created_at);

CREATE TABLE mail_outbox (
    id bigserial PRIMARY KEY,
    to_email text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    created_at timestamp NOT NULL,
    sent_at timestamp
);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    company_id uuid,
    actor_id uuid,
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    ip text NOT NULL DEFAULT '',
    created_at timestamp NOT NULL
);
CREATE INDEX audit_log_company ON audit_log (company_id, created_at);
