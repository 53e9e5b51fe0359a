// Parses PromQL expressions with Prometheus's own parser (the one its web UI uses):
// reads a JSON array of expressions on stdin, prints a JSON array of
// {expr, valid, metrics} (the metric names the expression selects). Used by the tests to
// check the alert rules in docs/operations.md against what the server exports.
import { parser } from '@prometheus-io/lezer-promql';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((expr) => {
  let valid = true;
  const metrics = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) valid = false;
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier');
        if (id) metrics.push(expr.slice(id.from, id.to));
      }
    },
  });
  return { expr, valid, metrics };
});
console.log(JSON.stringify(results));
