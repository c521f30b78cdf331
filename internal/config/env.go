package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// decode sets the fields of the struct v points to from getenv, by the envconfig-style tags
// they carry: `envconfig:"NAME"` names the variable, `default:"x"` is taken when it is empty,
// `required:"true"` refuses an empty one, `ignored:"true"` (or no name) leaves the field alone.
// berth once used kelseyhightower/envconfig for this; that package reads the process
// environment itself, and nothing below run may.
func decode(v any, getenv func(string) string) error {
	return decodeStruct(reflect.ValueOf(v).Elem(), getenv)
}

func decodeStruct(rv reflect.Value, getenv func(string) string) error {
	for i := range rv.NumField() {
		f, fv := rv.Type().Field(i), rv.Field(i)
		if !fv.CanSet() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := decodeStruct(fv, getenv); err != nil {
				return err
			}
			continue
		}
		key := f.Tag.Get("envconfig")
		if key == "" || isTrue(f.Tag.Get("ignored")) {
			continue
		}
		value := getenv(key)
		if value == "" {
			value = f.Tag.Get("default")
		}
		if value == "" {
			if isTrue(f.Tag.Get("required")) {
				return fmt.Errorf("configuration: required key %s missing value", key)
			}
			continue
		}
		if err := set(fv, value); err != nil {
			return fmt.Errorf("%s=%q is not a valid %s", key, value, f.Type)
		}
	}
	return nil
}

func isTrue(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}

// set decodes value into field as envconfig did: ints in any base Go accepts, booleans by
// strconv.ParseBool, durations by time.ParseDuration, slices split on commas.
func set(field reflect.Value, value string) error {
	switch {
	case field.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(value)
		if err != nil {
			return err
		}
		field.SetInt(int64(d))
	case field.Kind() == reflect.String:
		field.SetString(value)
	case field.CanInt():
		n, err := strconv.ParseInt(value, 0, field.Type().Bits())
		if err != nil {
			return err
		}
		field.SetInt(n)
	case field.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return err
		}
		field.SetBool(b)
	case field.Kind() == reflect.Slice:
		sl := reflect.MakeSlice(field.Type(), 0, 0)
		if strings.TrimSpace(value) != "" {
			parts := strings.Split(value, ",")
			sl = reflect.MakeSlice(field.Type(), len(parts), len(parts))
			for i, p := range parts {
				if err := set(sl.Index(i), p); err != nil {
					return err
				}
			}
		}
		field.Set(sl)
	default:
		return fmt.Errorf("unsupported type %s", field.Type())
	}
	return nil
}
