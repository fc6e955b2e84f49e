-- Names are plain text, and message text loads nothing by itself (services/shared/names.py,
-- validation.sanitize_text). New input is checked on the way in; this cleans what was
-- stored before, so history pages never send it out again.
--
-- Names: drop '<', '>', control characters, line and paragraph separators and the
-- invisible formatting characters that can disguise a name (zero-width space, marks and
-- overrides of text direction, word joiners, byte-order mark); collapse the spaces left.
CREATE FUNCTION pg_temp.plain_name(name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(nullif(btrim(regexp_replace(
        regexp_replace(name, '[<>\x01-\x1F\x7F-\x9F\u200B\u200E\u200F\u2028-\u202E\u2060-\u2069\uFEFF]', '', 'g'),
        '\s+', ' ', 'g')), ''), 'Unnamed')
$$;

UPDATE users SET name = pg_temp.plain_name(name) WHERE name <> pg_temp.plain_name(name);
UPDATE messages SET user_name = pg_temp.plain_name(user_name)
WHERE user_name <> pg_temp.plain_name(user_name);

-- Message text was cleaned by nh3, whose output is normalised (attributes quoted, '>'
-- inside values escaped), so an <img> tag there is exactly '<img' up to the next '>'.
-- Images were the one allowed tag that loads an external resource when displayed.
UPDATE messages SET text = regexp_replace(text, '<img\s[^>]*>|<img>', '', 'gi')
WHERE text ~* '<img[\s>]';
DROP FUNCTION pg_temp.plain_name(text);
