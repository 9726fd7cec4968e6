-- Routed libraries are one candidate kind, 'library', whose router is the method (as a merge's method is
-- its merge method): routers are plug-ins, and the schema no longer names them as kinds.
UPDATE candidates SET method = kind, kind = 'library' WHERE kind IN ('arrow', 'phatgoose');
