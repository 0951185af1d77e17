-- No index on a post attempt's token. Settling was its one reader, and it names the attempt's
-- lead too: it finds the lead's few attempts by post_attempts_lead and keeps the one with its
-- token (a uuid4 drawn for that attempt). The index cost two entries a lead: the attempt's
-- insert, and its settling, which is never a HOT update (outcome is named by the one-open
-- index's WHERE).
DROP INDEX post_attempts_token;
