import { SUBSHELL_CONTROL_REQUESTS, untrackSubshellControl, withUntracked } from '../kernelstatus';

describe('withUntracked', () => {
  it("adds the subshell control requests to the server's list, keeping its entries", () => {
    const list = JSON.parse(withUntracked('["debug_request","status"]', SUBSHELL_CONTROL_REQUESTS));
    expect(list).toEqual(['debug_request', 'status', ...SUBSHELL_CONTROL_REQUESTS]);
  });

  it('adds nothing twice', () => {
    const once = withUntracked('[]', SUBSHELL_CONTROL_REQUESTS);
    expect(withUntracked(once, SUBSHELL_CONTROL_REQUESTS)).toBe(once);
  });

  it('starts from an empty list when the option is missing or not a JSON list', () => {
    for (const raw of [undefined, '', 'not json', '{"a":1}']) {
      expect(JSON.parse(withUntracked(raw, ['x']))).toEqual(['x']);
    }
  });
});

describe('untrackSubshellControl', () => {
  it('writes the extended list back to the page config', () => {
    const options: { [name: string]: string } = {
      untracked_message_types: '["debug_request"]'
    };
    untrackSubshellControl({
      getOption: name => options[name] ?? '',
      setOption: (name, value) => {
        const last = options[name];
        options[name] = value;
        return last;
      }
    });
    expect(JSON.parse(options.untracked_message_types)).toContain('create_subshell_request');
    expect(JSON.parse(options.untracked_message_types)).toContain('debug_request');
  });
});
