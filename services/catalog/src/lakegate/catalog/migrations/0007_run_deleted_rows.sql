-- A merge with detect_deletes reports how many target rows it deleted; NULL for every other run.
ALTER TABLE runs ADD COLUMN deleted_rows bigint;
