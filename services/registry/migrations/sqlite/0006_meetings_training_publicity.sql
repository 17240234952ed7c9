-- 会议 (article 13), 政策培训 (article 4) and 宣传 (article 8(四)). As in 0005, `body` keeps the
-- contract message (hex of its protobuf encoding: ids, codes, dates and the bureau's words, no
-- personal data); the link tables let an expert find the meetings they were invited to and the
-- sessions they attended, and keep the `trained` flag of experts (the draw reads it) derivable.
CREATE TABLE meetings (
    id           TEXT PRIMARY KEY NOT NULL,
    meeting_type TEXT NOT NULL,
    meeting_date TEXT NOT NULL,
    year         INTEGER NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX meetings_year_idx ON meetings (year, meeting_type);

CREATE TABLE meeting_invitees (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    expert_id  TEXT NOT NULL REFERENCES experts (id),
    PRIMARY KEY (meeting_id, expert_id)
);
CREATE INDEX meeting_invitees_expert_idx ON meeting_invitees (expert_id, meeting_id);

CREATE TABLE trainings (
    id            TEXT PRIMARY KEY NOT NULL,
    training_date TEXT NOT NULL,
    year          INTEGER NOT NULL,
    body          TEXT NOT NULL
);

CREATE TABLE training_attendees (
    training_id TEXT NOT NULL REFERENCES trainings (id),
    expert_id   TEXT NOT NULL REFERENCES experts (id),
    PRIMARY KEY (training_id, expert_id)
);
CREATE INDEX training_attendees_expert_idx ON training_attendees (expert_id, training_id);

CREATE TABLE publicity_activities (
    id            TEXT PRIMARY KEY NOT NULL,
    expert_id     TEXT NOT NULL REFERENCES experts (id),
    bureau        TEXT NOT NULL,
    activity_date TEXT NOT NULL,
    year          INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX publicity_activities_expert_idx ON publicity_activities (expert_id, id);
