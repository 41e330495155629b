package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/wire"
)

func flowCommands(e *env, o *options) []*cobra.Command {
	apiLimit := func(use, field, short string) *cobra.Command {
		return mgmt(e, o, use+" API_ID RATE", short+" (RATE like 100/second, 6000/minute; 0/second = no limit)", cobra.ExactArgs(2),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				fc, err := c.SetFlowControl(cmd.Context(), args[0], map[string]any{field: args[1]})
				return fc, field + " of api " + args[0] + " is now " + args[1], err
			})
	}
	serverLimit := func(use, short string, body func(s *wire.Server, v string) error) *cobra.Command {
		return mgmt(e, o, use, short, cobra.ExactArgs(3),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				host, port, err := splitHostPort(args[1])
				if err != nil {
					return nil, "", err
				}
				s := wire.Server{Host: host, Port: port}
				if err := body(&s, args[2]); err != nil {
					return nil, "", err
				}
				st, err := c.SetServerFlowControl(cmd.Context(), args[0], s)
				return st, st.Message, err
			})
	}
	return []*cobra.Command{
		apiLimit("update_client_spike_threshold", "client_spike_threshold", "Set how many requests each client may make to an API"),
		apiLimit("update_bytes_in_threshold", "bytes_in_threshold", "Set the bytes per unit a WebSocket connection may send (throttled past it)"),
		apiLimit("update_bytes_out_threshold", "bytes_out_threshold", "Set the bytes per unit a WebSocket connection may receive (throttled past it)"),
		serverLimit("update_server_spike_threshold API_ID HOST:PORT RATE", "Set how many requests one backend server takes per unit", func(s *wire.Server, v string) error {
			s.ServerSpikeThreshold = &v
			return nil
		}),
		serverLimit("update_server_connection_quota API_ID HOST:PORT N", "Set how many requests one backend server takes at once (0 = no limit)", func(s *wire.Server, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return usagef("N must be a whole number, got %q", v)
			}
			s.ServerConnectionQuota = n
			return nil
		}),
		mgmt(e, o, "flow_control API_ID", "Show an API's flow control", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				fc, err := c.FlowControl(cmd.Context(), args[0])
				text := "api : " + fc.APIID + "\nclient spike threshold : " + fc.FlowControl.ClientSpikeThreshold
				if fc.FlowControl.BytesInThreshold != nil {
					text += "\nbytes in threshold : " + *fc.FlowControl.BytesInThreshold + "\nbytes out threshold : " + *fc.FlowControl.BytesOutThreshold
				}
				text += "\nserver connection queueing : " + strconv.FormatBool(fc.FlowControl.ServerConnectionQueueing)
				return fc, text, err
			}),
	}
}
