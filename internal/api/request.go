package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// bindJSON decodes the request body into v. Malformed JSON, a wrong type or
// an empty body is a 400 naming the problem; a body over the cap is a 413.
// Unknown fields are ignored (§0).
func bindJSON(c *gin.Context, v any) error { return bind(c, v, true) }

// bindOptionalJSON is bindJSON for routes whose body may be absent.
func bindOptionalJSON(c *gin.Context, v any) error { return bind(c, v, false) }

func bind(c *gin.Context, v any, required bool) error {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return BadRequest("could not read request body")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if required {
			return BadRequest("request body is required")
		}
		return nil
	}
	return decodeJSON(data, v)
}

func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := typeErr.Field
			if field == "" {
				return BadRequest(fmt.Sprintf("request body must be a JSON %s", jsonKind(v)))
			}
			return BadRequest(fmt.Sprintf("field %q must be %s", field, typeName(typeErr.Type.String())))
		case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
			return BadRequest("malformed JSON")
		default:
			var apiErr *Error
			if errors.As(err, &apiErr) {
				return apiErr
			}
			return BadRequest("malformed JSON: " + safeMsg(err.Error()))
		}
	}
	if dec.More() {
		return BadRequest("malformed JSON: trailing data after the object")
	}
	return nil
}

func tooLarge(limit int64) *Error {
	return newErr(http.StatusRequestEntityTooLarge, CodeTooLarge,
		fmt.Sprintf("request body exceeds %d bytes", limit))
}

func jsonKind(v any) string {
	if strings.HasPrefix(fmt.Sprintf("%T", v), "*[]") {
		return "array"
	}
	return "object"
}

// typeName turns Go type names into JSON words for error messages.
func typeName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "*int"):
		return "an integer"
	case strings.HasPrefix(t, "float"), t == "json.Number", strings.HasPrefix(t, "*float"):
		return "a number"
	case t == "string", t == "*string":
		return "a string"
	case t == "bool", t == "*bool":
		return "a boolean"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "struct"):
		return "an object"
	case strings.Contains(t, "uuid.UUID"):
		return "a UUID string"
	}
	return "of another type"
}

// safeMsg keeps a decoder message short and printable.
func safeMsg(s string) string {
	s = strings.TrimPrefix(s, "json: ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// parseUUID parses an id; malformed → 400 invalid id (§0).
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, errInvalidID
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, errInvalidID
	}
	return id, nil
}

// parseBodyUUID parses an id found in a body field; malformed → 400 naming
// the field (never a 500 from Postgres).
func parseBodyUUID(field, s string) (uuid.UUID, error) {
	id, err := parseUUID(s)
	if err != nil {
		return uuid.Nil, BadRequest(fmt.Sprintf("field %q must be a UUID", field))
	}
	return id, nil
}

// checkText validates a client string: valid UTF-8, no NUL (Postgres text
// cannot hold it), at most max characters (0 = no limit).
func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return BadRequest(fmt.Sprintf("field %q must be valid UTF-8", field))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return BadRequest(fmt.Sprintf("field %q must not contain NUL characters", field))
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		return BadRequest(fmt.Sprintf("field %q must be at most %d characters", field, max))
	}
	return nil
}

// page reads ?limit and ?offset: defaults, clamped to max, 400 on negative
// or non-numeric values (§0).
func page(c *gin.Context, def, max int) (limit, offset int, err error) {
	limit, offset = def, 0
	if v := c.Query("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			return 0, 0, BadRequest("limit must be a non-negative integer")
		}
		limit = min(n, max)
		if n == 0 {
			limit = def
		}
	}
	if v := c.Query("offset"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			return 0, 0, BadRequest("offset must be a non-negative integer")
		}
		offset = n
	}
	return limit, offset, nil
}
