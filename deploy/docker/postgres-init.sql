-- First start of the Postgres volume: a separate database for the demo profile, so the demo keeper's
-- audit chain never mixes with a live keeper's (both are named "main", as the MQTT ACL expects).
CREATE DATABASE hedged_demo;
