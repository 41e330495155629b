// Package jsondoc reads JSON documents from outside strictly: duplicate keys
// and trailing data are errors, and typed getters collect every problem with
// its JSON path instead of stopping at the first, so an operator sees all
// that is wrong with a document at once.
package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Object is a decoded JSON object that remembers its key order, so that
// errors come out in the order the operator wrote the fields.
type Object struct {
	keys   []string
	values map[string]any
}

// Parse decodes one JSON document into nil, bool, json.Number, string,
// []any and *Object values. Unlike encoding/json into a map it rejects
// duplicate keys and trailing data, which would otherwise be silently
// dropped from an operator's definition.
func Parse(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, 0, true)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON document")
	}
	return v, nil
}

// Check reports what Parse would about data, without building the
// document: for documents too large to hold decoded (a bulk import of a
// million entries).
func Check(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := readValue(dec, 0, false); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON document")
	}
	return nil
}

// maxDepth bounds nesting so that a hostile document cannot exhaust the
// stack; API definitions are at most four levels deep.
const maxDepth = 32

// readValue reads one value; unless keep, only its keys are kept (to find
// duplicates), and it returns nil.
func readValue(dec *json.Decoder, depth int, keep bool) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &Object{values: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxError(err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("malformed JSON object")
				}
				if _, dup := obj.values[key]; dup {
					return nil, fmt.Errorf("duplicate key %q", key)
				}
				v, err := readValue(dec, depth+1, keep)
				if err != nil {
					return nil, err
				}
				obj.keys = append(obj.keys, key)
				obj.values[key] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxError(err)
			}
			if !keep {
				return nil, nil
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := readValue(dec, depth+1, keep)
				if err != nil {
					return nil, err
				}
				if keep {
					arr = append(arr, v)
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxError(err)
			}
			if !keep {
				return nil, nil
			}
			return arr, nil
		default:
			return nil, fmt.Errorf("unexpected %q", t)
		}
	default:
		return t, nil
	}
}

func syntaxError(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON input")
	}
	return err
}

// TypeName names a decoded value's JSON type for error messages.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case *Object:
		return "an object"
	}
	return "an unknown value"
}
