package config

import (
	"reflect"
	"testing"
	"time"
)

// TestDecode: each field kind berth's configuration uses decodes as envconfig decoded it, an
// empty variable takes the default, and a bad value names the variable, the value and the type.
func TestDecode(t *testing.T) {
	type Inner struct {
		Nested string `envconfig:"NESTED" default:"n"`
	}
	type spec struct {
		S       string        `envconfig:"S" default:"def"`
		L       []string      `envconfig:"L"`
		I       int           `envconfig:"I" default:"2"`
		B       bool          `envconfig:"B"`
		D       time.Duration `envconfig:"D" default:"5m"`
		R       string        `envconfig:"R" required:"true"`
		Skipped string        `ignored:"true"`
		Inner
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want spec
		err  string
	}{
		{name: "defaults", env: map[string]string{"R": "r"},
			want: spec{S: "def", I: 2, D: 5 * time.Minute, R: "r", Inner: Inner{"n"}}},
		{name: "values", env: map[string]string{"R": "r", "S": "x", "L": "a, b,", "I": "0x10", "B": "TRUE", "D": "90s", "NESTED": "m", "Skipped": "no"},
			want: spec{S: "x", L: []string{"a", " b", ""}, I: 16, B: true, D: 90 * time.Second, R: "r", Inner: Inner{"m"}}},
		{name: "blank list", env: map[string]string{"R": "r", "L": " "},
			want: spec{S: "def", L: []string{}, I: 2, D: 5 * time.Minute, R: "r", Inner: Inner{"n"}}},
		{name: "required", env: map[string]string{}, err: "configuration: required key R missing value"},
		{name: "bad int", env: map[string]string{"R": "r", "I": "many"}, err: `I="many" is not a valid int`},
		{name: "bad bool", env: map[string]string{"R": "r", "B": "yes"}, err: `B="yes" is not a valid bool`},
		{name: "bad duration", env: map[string]string{"R": "r", "D": "5"}, err: `D="5" is not a valid time.Duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got spec
			err := decode(&got, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}
