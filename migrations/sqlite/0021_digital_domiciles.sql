-- The digital domicile cache (issue 21): what INAD answered for a codice fiscale. `pec` is the
-- domicile found, NULL when INAD has none (a 404 is an answer too, and is cached the same
-- way). `source` says who answered (`inad`). `checked_at` is when, `valid_until` when the row
-- must be asked again (`[domicile.inad] cache_days` later). A failed look-up writes nothing:
-- the code stays due and is asked again on the next pass.
CREATE TABLE digital_domiciles (
    fiscal_code  TEXT    NOT NULL PRIMARY KEY,
    pec          TEXT,
    source       TEXT    NOT NULL,
    checked_at   INTEGER NOT NULL,
    valid_until  INTEGER NOT NULL
);
CREATE INDEX digital_domiciles_valid_until ON digital_domiciles (valid_until);
