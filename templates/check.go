package templates

import (
	"fmt"
	"slices"
	"strings"
	"text/template/parse"

	"github.com/herald-notify/herald"
)

// The work budget of one rendering, in steps: a step is roughly the evaluation of one node of
// the template, or a comparison or case change of bytesPerStep bytes. Output has its own limit;
// the budget bounds what renders nothing, such as a loop over a long list whose body only
// compares long strings. The whole budget takes a few tens of milliseconds.
const (
	maxSteps     = 250_000
	bytesPerStep = 64
)

// allowedFunctions is quoted to clients who call something else.
const allowedFunctions = "and, default, eq, ge, gt, index, le, len, lower, lt, ne, not, or, trim, upper"

// scope is what the checker knows about the place of a node.
type scope struct {
	// rootDot is true where dot is still the variables: outside the bodies of with and range.
	rootDot bool
	inRange bool
}

// checker walks a parse tree once: it refuses what the subset does not allow, collects the
// top-level variables, counts the steps the template costs and puts a guard on every range.
type checker struct {
	tree    *parse.Tree
	content string
	// html says html/template runs the tree: each action that prints passes its value through
	// escaping functions, which scan it.
	html bool
	// longestLiteral is the length of the longest string literal seen so far.
	longestLiteral int

	// problem is the first refusal, with its position; the walk stops adding to it.
	problem string
	// required are the top-level variables used outside default; optional those used as
	// default's value.
	required map[string]bool
	optional map[string]bool
	// loops holds the cost of one iteration of each range body, indexed like the guards.
	loops []cost
}

func newChecker(tree *parse.Tree, content string, html bool) *checker {
	return &checker{
		tree:     tree,
		content:  content,
		html:     html,
		required: make(map[string]bool),
		optional: make(map[string]bool),
	}
}

// cost counts nodes and calls that may scan a whole string. Scans are priced once the longest
// string in reach is known, after the walk.
type cost struct{ nodes, scans int64 }

func (c cost) plus(d cost) cost { return cost{c.nodes + d.nodes, c.scans + d.scans} }

// steps prices c when no string is longer than longest bytes.
func (c cost) steps(longest int) int64 {
	return c.nodes + c.scans*(1+int64(longest/bytesPerStep))
}

// node checks n and returns its cost, counting a range body once per loop (the guard charges
// it per item).
func (c *checker) node(n parse.Node, s scope) cost {
	if c.problem != "" {
		return cost{}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return cost{}
		}
		total := cost{nodes: 1}
		for _, child := range n.Nodes {
			total = total.plus(c.node(child, s))
		}
		return total
	case *parse.StringNode:
		c.longestLiteral = max(c.longestLiteral, len(n.Text))
		return cost{nodes: 1}
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode,
		*parse.BoolNode, *parse.NumberNode, *parse.NilNode, *parse.DotNode:
		return cost{nodes: 1}
	case *parse.ActionNode:
		total := c.pipe(n.Pipe, s).plus(cost{nodes: 1})
		if c.html && len(n.Pipe.Decl) == 0 {
			// html/template chains up to three escapers on a printed value (a URL is filtered,
			// normalized, then escaped for its attribute), each reading it whole.
			total = total.plus(cost{nodes: 3, scans: 3})
		}
		return total
	case *parse.IfNode:
		return c.branch(&n.BranchNode, s, s)
	case *parse.WithNode:
		inner := s
		inner.rootDot = false
		return c.branch(&n.BranchNode, s, inner)
	case *parse.RangeNode:
		return c.rangeNode(n, s)
	case *parse.PipeNode:
		return c.pipe(n, s)
	case *parse.IdentifierNode:
		return c.function(n)
	case *parse.FieldNode:
		if s.rootDot {
			c.required[n.Ident[0]] = true
		}
		return cost{nodes: 1}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			c.required[n.Ident[1]] = true
		}
		return cost{nodes: 1}
	case *parse.ChainNode:
		return c.node(n.Node, s).plus(cost{nodes: 1})
	case *parse.TemplateNode:
		c.fail(n, "{{template}} is not allowed")
		return cost{}
	}
	// A node kind added to text/template after this was written: refuse what is not understood.
	c.fail(n, fmt.Sprintf("%s is not allowed", n))
	return cost{}
}

func (c *checker) branch(b *parse.BranchNode, outer, inner scope) cost {
	return c.pipe(b.Pipe, outer).plus(c.node(b.List, inner)).plus(c.node(b.ElseList, outer)).plus(cost{nodes: 1})
}

func (c *checker) pipe(p *parse.PipeNode, s scope) cost {
	if p == nil {
		return cost{}
	}
	for _, v := range p.Decl {
		if v.Ident[0] == "$" {
			// $ must stay the variables, or $.name would not mean the variable name.
			c.fail(v, "$ cannot be redefined; use another name, such as $user")
			return cost{}
		}
	}
	total := cost{nodes: 1 + int64(len(p.Decl))}
	for i, cmd := range p.Cmds {
		// {{.name | default "friend"}}: .name is the value default examines.
		piped := i+1 < len(p.Cmds) && isDefault(p.Cmds[i+1]) && len(p.Cmds[i+1].Args) == 2
		total = total.plus(c.command(cmd, s, piped))
	}
	return total
}

// command checks cmd; pipedToDefault says that its value is what default examines.
func (c *checker) command(cmd *parse.CommandNode, s scope, pipedToDefault bool) cost {
	total := cost{nodes: 1}
	for i, arg := range cmd.Args {
		defaultValue := (pipedToDefault && len(cmd.Args) == 1) ||
			(isDefault(cmd) && len(cmd.Args) == 3 && i == 2)
		if name, ok := topLevelName(arg, s); ok && defaultValue {
			c.optional[name] = true
			total.nodes++
			continue
		}
		total = total.plus(c.node(arg, s))
	}
	return total
}

func (c *checker) rangeNode(n *parse.RangeNode, s scope) cost {
	if s.inRange {
		// One level of loops keeps the work linear in the size of the variables.
		c.fail(n, "a range inside another range is not allowed")
		return cost{}
	}
	if len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		c.fail(n.Pipe, "range may only iterate over a variable, such as {{range .items}}")
		return cost{}
	}
	over := n.Pipe.Cmds[0].Args[0]
	switch over.(type) {
	case *parse.FieldNode, *parse.VariableNode, *parse.DotNode:
	case *parse.NumberNode:
		// Since Go 1.22 {{range 1000000000}} counts, doing unbounded work for a few bytes.
		c.fail(over, "range over a number is not allowed; iterate over a list such as {{range .items}}")
		return cost{}
	default:
		c.fail(over, "range may only iterate over a variable, such as {{range .items}}")
		return cost{}
	}
	total := c.pipe(n.Pipe, s).plus(c.node(n.ElseList, s)).plus(cost{nodes: 1})
	body := c.node(n.List, scope{inRange: true}).plus(cost{nodes: 1})
	if c.problem != "" {
		return cost{}
	}

	// A variable can still hold a number ({{$n := 5}}{{range $n}}), and the item count is only
	// known when the loop starts: the guard, piped after the ranged value, checks both then.
	name := guardName(len(c.loops))
	c.loops = append(c.loops, body)
	guard := parse.NewIdentifier(name).SetTree(c.tree).SetPos(over.Position())
	n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
		NodeType: parse.NodeCommand,
		Pos:      over.Position(),
		Args:     []parse.Node{guard},
	})
	return total
}

// function checks a call of n and returns its cost.
func (c *checker) function(n *parse.IdentifierNode) cost {
	switch n.Ident {
	case "and", "or", "not", "len", "default":
		return cost{nodes: 1}
	case "eq", "ne", "lt", "le", "gt", "ge", "index", "trim":
		return cost{nodes: 1, scans: 1}
	case "upper", "lower":
		// Changing case allocates and decodes runes: several times the work of comparing.
		return cost{nodes: 1, scans: 4}
	case "printf", "print", "println":
		c.fail(n, fmt.Sprintf("function %q is not allowed; insert values with {{.name}}", n.Ident))
	case "call", "html", "js", "urlquery", "slice":
		c.fail(n, fmt.Sprintf("function %q is not allowed", n.Ident))
	default:
		c.fail(n, fmt.Sprintf("function %q is not allowed; the functions are %s", n.Ident, allowedFunctions))
	}
	return cost{}
}

func (c *checker) fail(n parse.Node, problem string) {
	if c.problem == "" {
		c.problem = position(c.content, n) + ": " + problem
	}
}

// resolve reports the required variables missing from data, and adds the optional ones as
// empty strings: missingkey=error would otherwise stop default before it runs.
func (c *checker) resolve(field string, data map[string]any) error {
	var missing []string
	for name := range c.required {
		if _, ok := data[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		fields := make(map[string]string, len(missing))
		for _, name := range missing {
			fields["variables."+name] = "used by " + field + " but not given"
		}
		return herald.Invalid(fmt.Sprintf("%s uses variables that were not given: %s",
			field, strings.Join(missing, ", ")), fields)
	}
	for name := range c.optional {
		if _, ok := data[name]; !ok {
			data[name] = ""
		}
	}
	return nil
}

func isDefault(cmd *parse.CommandNode) bool {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == "default"
}

// topLevelName returns the variable n names when it is a plain top-level reference: .name
// where dot is the variables, or $.name anywhere.
func topLevelName(n parse.Node, s scope) (string, bool) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if s.rootDot && len(n.Ident) == 1 {
			return n.Ident[0], true
		}
	case *parse.VariableNode:
		if len(n.Ident) == 2 && n.Ident[0] == "$" {
			return n.Ident[1], true
		}
	}
	return "", false
}

func guardName(i int) string { return fmt.Sprintf("heraldRangeGuard%d", i) }
