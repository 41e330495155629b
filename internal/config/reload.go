package config

// Change is one key whose value differs between the configuration in
// effect and one just loaded.
type Change struct {
	Key      string
	Old, New string // as written in ase.conf; empty for a secret key
	Secret   bool   // the values are never shown
	// Live changes are applied by a reload; the others need a restart.
	Live bool
	// Hint says how to change the setting without a restart, if there is
	// a way (the settings the management API owns).
	Hint string
}

func (c Change) String() string {
	if c.Secret {
		return c.Key + " changed"
	}
	return c.Key + " " + quoteEmpty(c.Old) + " -> " + quoteEmpty(c.New)
}

func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// hints name the commands that change a setting live.
var hints = map[string]string{
	"enable_firewall":                "`ase enable_firewall` or `ase disable_firewall` changes it now",
	"enable_ase_detected_attack":     "`ase enable_ase_detected_attack` or `ase disable_ase_detected_attack` changes it now",
	"enable_sideband_authentication": "`ase enable_sideband_authentication` or `ase disable_sideband_authentication` changes it now",
}

// Reload compares next, just loaded, with cur, the configuration in
// effect. It returns the configuration to run on from now, cur with every
// key that can change live taken from next (and next's file and ignored
// keys), and every key whose value differs, in the order of Keys.
func Reload(cur, next *Config) (*Config, []Change) {
	eff := *cur
	eff.Path, eff.Ignored = next.Path, next.Ignored
	var changes []Change
	for i := range keys {
		k := &keys[i]
		old, nv := k.get(cur), k.get(next)
		if old == nv {
			continue
		}
		ch := Change{Key: k.name, Old: old, New: nv, Secret: k.secret, Live: k.live, Hint: hints[k.name]}
		if k.secret {
			ch.Old, ch.New = "", ""
		}
		if k.live {
			// next accepted the value, so setting it again cannot fail.
			if err := k.set(&eff, nv); err != nil {
				panic("config: " + k.name + ": " + err.Error())
			}
		}
		changes = append(changes, ch)
	}
	eff.Warnings = warnings(&eff)
	return &eff, changes
}
