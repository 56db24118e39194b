-- The source snapshot each stored cursor was reached in (`Cursor.snapshot`, `pg_current_snapshot()` as
-- text): the next run also reads rows below the cursor whose transaction that snapshot could not see.
-- NULL for cursors stored before, and from sources before PostgreSQL 13.
ALTER TABLE cursors ADD COLUMN snapshot text;
