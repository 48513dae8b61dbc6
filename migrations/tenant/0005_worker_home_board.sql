-- Which board a worker belongs to: set when a board admin (not the instance
-- admin) first creates the worker by minting a token on its board. A board
-- admin may mint tokens only for new workers and for workers of its board;
-- every other worker (the instance admin's, dashboard users, workers made
-- by `taskharbor token create`) is the instance admin's to mint for.
ALTER TABLE workers ADD COLUMN home_board_id INTEGER REFERENCES boards (id);
