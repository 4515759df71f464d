"""Seeds a PERM-Tracker-shaped v1 database (Supabase layout) for the sandbox and the tests.

Tables: `auth.users`, `public.cases` (33 columns: uuids, text, numeric wages, dates,
timestamptz, jsonb, text[], booleans, a user reference), `user_settings`,
`user_preferences`, `notifications`; the Supabase roles `anon`, `authenticated`,
`service_role`, and `authenticator`, which the API server logs in as. Rows are generated
inside PostgreSQL from their index, so the same scale always yields the same data, with a
realistic mix of NULLs, unicode, quotes, backslashes and newlines, duplicate emails that
differ by case, unverified and NULL emails.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

SCHEMA = r"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN; END IF;
  -- As on Supabase: the API server logs in as authenticator and switches to anon or authenticated.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
    CREATE ROLE authenticator LOGIN NOINHERIT;
  END IF;
END $$;
GRANT anon, authenticated, service_role TO authenticator;

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    id uuid PRIMARY KEY,
    email text,
    encrypted_password text,
    email_confirmed_at timestamptz,
    phone text,
    raw_user_meta_data jsonb,
    is_anonymous boolean NOT NULL DEFAULT false,
    last_sign_in_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz
);

CREATE TABLE public.cases (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES auth.users (id),
    employer_name text NOT NULL,
    position_title text,
    beneficiary_identifier text,
    case_status text NOT NULL,
    progress_status text,
    pwd_filing_date date,
    pwd_determination_date date,
    pwd_expiration_date date,
    pwd_wage_amount numeric(10, 2),
    pwd_wage_level text,
    recruitment_start_date date,
    recruitment_end_date date,
    job_order_start_date date,
    job_order_end_date date,
    sunday_ad_first_date date,
    sunday_ad_second_date date,
    eta9089_filing_date date,
    eta9089_certification_date date,
    eta9089_expiration_date date,
    i140_filing_date date,
    i140_approval_date date,
    is_professional_occupation boolean,
    is_favorite boolean,
    calendar_sync_enabled boolean,
    tags text[],
    additional_recruitment_methods jsonb,
    notes text,
    priority_level integer,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz
);
CREATE INDEX cases_user_id ON public.cases (user_id);

CREATE TABLE public.user_settings (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL UNIQUE REFERENCES auth.users (id),
    timezone text NOT NULL,
    date_format text NOT NULL,
    dashboard_layout jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE public.user_preferences (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL UNIQUE REFERENCES auth.users (id),
    email_notifications boolean NOT NULL DEFAULT true,
    calendar_sync_pwd boolean,
    calendar_sync_eta9089 boolean,
    reminder_days integer[],
    theme text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE public.notifications (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES auth.users (id),
    case_id uuid REFERENCES public.cases (id),
    type text NOT NULL,
    title text NOT NULL,
    message text,
    is_read boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    read_at timestamptz
);

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO authenticated, service_role;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO anon;
"""

# h(x) is a stable pseudo-random integer in [0, 2^31) for a text key.
_H = "abs(hashtext({}))"

DATA = r"""
INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at, phone, raw_user_meta_data,
                        is_anonymous, last_sign_in_at, created_at, updated_at)
SELECT md5('user' || i)::uuid,
       CASE
         WHEN i % 211 = 0 THEN NULL                                     -- phone sign-ups: no email
         WHEN i % 97 = 0 THEN upper(substr('user' || (i - 1), 1, 1)) || substr('user' || (i - 1), 2) || '@Example.com'
                                                                        -- duplicate of the previous user, by case
         WHEN i % 89 = 0 THEN '  user' || i || '@example.com '          -- stray whitespace
         ELSE 'user' || i || '@example.com'
       END,
       '$2a$10$' || md5('pw' || i),
       CASE WHEN i % 23 = 0 THEN NULL ELSE timestamptz '2023-01-01 00:00:00+00' + (i % 600) * interval '1 day' END,
       CASE WHEN i % 211 = 0 THEN '+1555' || lpad((i % 10000000)::text, 7, '0') END,
       jsonb_build_object('full_name', (ARRAY['Ana Müller', 'José Núñez', 'Zoë O''Brien', '李小龍', 'Jean "JJ" Roux',
                                              'Back\slash Smith'])[1 + i % 6],
                          'avatar_url', CASE WHEN i % 3 = 0 THEN NULL ELSE 'https://img.example.com/' || i END),
       false,
       CASE WHEN i % 7 = 0 THEN NULL ELSE timestamptz '2025-06-01 00:00:00+00' + (i % 300) * interval '1 hour' END,
       timestamptz '2023-01-01 08:00:00+00' + i * interval '37 minutes',
       timestamptz '2024-01-01 08:00:00+00' + i * interval '11 minutes'
FROM generate_series(1, %(users)s) AS i;

INSERT INTO public.cases
SELECT md5('case' || c)::uuid,
       md5('user' || (1 + (c::bigint * 7919) % %(users)s))::uuid,
       (ARRAY['Acme Corp', 'Müller GmbH', 'Café "Le Petit"', 'O''Brien & Sons', 'Back\slash LLC',
              '株式会社テスト', 'Ñandú Labs', 'Zeta	Tabbed Inc', 'Über Systems', 'Smith, Jones & Co'])[1 + c % 10],
       (ARRAY['Software Engineer', 'Data Scientist', 'Registered Nurse', NULL, 'Financial Analyst',
              'Mechanical Engineer'])[1 + (c / 3) % 6],
       CASE WHEN c % 13 = 0 THEN NULL ELSE 'BEN-' || lpad(c::text, 6, '0') END,
       (ARRAY['pwd', 'recruitment', 'eta9089', 'i140', 'closed'])[1 + (c / 7) % 5],
       (ARRAY['working', 'waiting_intake', 'filed', 'approved', 'under_review', 'rfi_rfe', NULL])[1 + c % 7],
       date '2024-01-01' + (c % 500),
       CASE WHEN c % 4 = 0 THEN NULL ELSE date '2024-03-01' + (c % 500) END,
       CASE WHEN c % 4 = 0 THEN NULL ELSE date '2025-03-01' + (c % 500) END,
       CASE WHEN c % 17 = 0 THEN NULL
            WHEN c % 1009 = 7 THEN 99999999.99  -- the column's maximum, in every scale
            ELSE round((40000 + (abs(hashtext('wage' || c)) % 16000000) / 100.0)::numeric, 2) END,
       (ARRAY['I', 'II', 'III', 'IV', NULL])[1 + c % 5],
       CASE WHEN c % 3 = 0 THEN NULL ELSE date '2024-05-01' + (c % 400) END,
       CASE WHEN c % 3 = 0 THEN NULL ELSE date '2024-06-01' + (c % 400) END,
       CASE WHEN c % 5 = 0 THEN NULL ELSE date '2024-05-03' + (c % 400) END,
       CASE WHEN c % 5 = 0 THEN NULL ELSE date '2024-06-03' + (c % 400) END,
       CASE WHEN c % 6 = 0 THEN NULL ELSE date '2024-05-05' + (c % 400) END,
       CASE WHEN c % 6 = 0 THEN NULL ELSE date '2024-05-12' + (c % 400) END,
       CASE WHEN c % 2 = 0 THEN NULL ELSE date '2024-09-01' + (c % 300) END,
       CASE WHEN c % 4 <> 1 THEN NULL ELSE date '2025-01-01' + (c % 300) END,
       CASE WHEN c % 4 <> 1 THEN NULL ELSE date '2025-07-01' + (c % 300) END,
       CASE WHEN c % 8 <> 1 THEN NULL ELSE date '2025-02-01' + (c % 300) END,
       CASE WHEN c % 16 <> 1 THEN NULL ELSE date '2025-08-01' + (c % 200) END,
       CASE WHEN c % 9 = 0 THEN NULL ELSE c % 2 = 0 END,
       c % 11 = 0,
       CASE WHEN c % 10 = 0 THEN NULL ELSE c % 3 <> 0 END,
       CASE WHEN c % 5 = 0 THEN NULL
            WHEN c % 5 = 1 THEN ARRAY[]::text[]
            ELSE ARRAY['priority', 'h1b-' || (c % 3), 'tag "quoted"'] END,
       CASE WHEN c % 4 = 0 THEN NULL
            ELSE jsonb_build_array(
              jsonb_build_object('method', (ARRAY['job_fair', 'campus_placement', 'trade_organization',
                                                  'private_employment_firm'])[1 + c % 4],
                                 'date', (date '2024-05-10' + (c % 300))::text,
                                 'description', 'Booth #' || (c % 50) || E' at "Expo"\nHall \\B')) END,
       CASE WHEN c % 7 = 0 THEN NULL
            WHEN c % 7 = 1 THEN E'First line\nSecond line with a tab\tand a backslash \\ and "quotes"'
            WHEN c % 7 = 2 THEN 'Émoji ✅ and ünïcödé'
            ELSE 'Note ' || c END,
       CASE WHEN c % 3 = 0 THEN NULL ELSE c % 5 END,
       timestamptz '2024-01-01 00:00:00+00' + c * interval '13 minutes',
       timestamptz '2024-06-01 00:00:00.123456+00' + c * interval '7 minutes 3 seconds',
       CASE WHEN c % 50 = 0 THEN timestamptz '2025-09-01 00:00:00+00' + c * interval '1 minute' END
FROM generate_series(1, %(cases)s) AS c;

INSERT INTO public.user_settings
SELECT md5('settings' || i)::uuid, md5('user' || i)::uuid,
       (ARRAY['America/New_York', 'America/Los_Angeles', 'Europe/Berlin', 'Asia/Kolkata'])[1 + i % 4],
       (ARRAY['MM/DD/YYYY', 'YYYY-MM-DD', 'DD.MM.YYYY'])[1 + i % 3],
       CASE WHEN i % 2 = 0 THEN NULL ELSE jsonb_build_object('columns', jsonb_build_array('status', 'deadline'),
                                                             'compact', i % 4 = 1) END,
       timestamptz '2023-01-01 08:00:00+00' + i * interval '37 minutes',
       timestamptz '2024-02-01 08:00:00+00' + i * interval '17 minutes'
FROM generate_series(1, %(users)s) AS i
WHERE i % 50 <> 0;  -- some users never opened their settings

INSERT INTO public.user_preferences
SELECT md5('prefs' || i)::uuid, md5('user' || i)::uuid,
       i % 8 <> 0,
       CASE WHEN i % 6 = 0 THEN NULL ELSE i % 2 = 0 END,
       CASE WHEN i % 6 = 0 THEN NULL ELSE i % 3 = 0 END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE ARRAY[1, 7, 30] END,
       (ARRAY['light', 'dark', 'system', NULL])[1 + i % 4],
       timestamptz '2023-01-01 08:00:00+00' + i * interval '37 minutes',
       timestamptz '2024-03-01 08:00:00+00' + i * interval '19 minutes'
FROM generate_series(1, %(users)s) AS i;

INSERT INTO public.notifications
SELECT md5('notification' || n)::uuid,
       md5('user' || (1 + (n::bigint * 31) % %(users)s))::uuid,
       CASE WHEN n % 5 = 0 THEN NULL ELSE md5('case' || (1 + (n::bigint * 13) % %(cases)s))::uuid END,
       (ARRAY['deadline_reminder', 'status_change', 'rfi_due', 'system'])[1 + n % 4],
       (ARRAY['PWD expires soon', 'Case filed', 'RFI response due', 'Maintenance on Dec 5'])[1 + n % 4],
       CASE WHEN n % 9 = 0 THEN NULL ELSE E'Your case needs attention:\n"' || n || E'" \\ see details' END,
       n % 3 = 0,
       timestamptz '2025-01-01 00:00:00+00' + n * interval '29 minutes',
       CASE WHEN n % 3 = 0 THEN timestamptz '2025-01-02 00:00:00+00' + n * interval '29 minutes' END
FROM generate_series(1, %(notifications)s) AS n;
"""


@dataclass(frozen=True)
class SeedSize:
    users: int
    cases: int
    notifications: int

    @classmethod
    def for_scale(cls, scale: float) -> SeedSize:
        """Scale 1 is 1,000 users and 10,000 cases (the demo's default)."""
        users = max(10, round(1000 * scale))
        return cls(users=users, cases=users * 10, notifications=users * 3)


def seed(dsn: str, size: SeedSize) -> dict[str, int]:
    """Create the v1 schema and rows; return the row count of each table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.encode())
        with conn.transaction():
            # The generated rows are consistent by construction; skipping the foreign-key
            # triggers makes a million-row seed several times faster.
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(
                DATA.replace("%(users)s", str(size.users))
                .replace("%(cases)s", str(size.cases))
                .replace("%(notifications)s", str(size.notifications))
                .encode()
            )
        conn.execute("ANALYZE")
        counts = {}
        for table in (
            "auth.users",
            "public.cases",
            "public.user_settings",
            "public.user_preferences",
            "public.notifications",
        ):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts
