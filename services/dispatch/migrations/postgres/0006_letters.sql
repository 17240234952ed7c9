-- Dispatch letters (派遣函, article 9(一), D21): one per accepted assignment, with a printed number
-- and the code an institution checks. A letter is valid while its assignment stays ACCEPTED or
-- COMPLETED and its draw stands; otherwise it reads as revoked.
CREATE TABLE letters (
    id                TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    letter_number     TEXT COLLATE "C" NOT NULL UNIQUE,
    assignment_id     TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES assignments (id),
    task_id           TEXT COLLATE "C" NOT NULL,
    expert_id         TEXT COLLATE "C" NOT NULL,
    verification_code TEXT NOT NULL,
    issued_at         TEXT NOT NULL
);
CREATE INDEX letters_task_idx ON letters (task_id, letter_number);
