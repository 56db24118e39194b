-- A merge schedule may also remove the rows deleted at the source, like sync_table_to_bronze's detect_deletes.
ALTER TABLE schedules ADD COLUMN detect_deletes boolean NOT NULL DEFAULT false;
